package auth

import (
	"strings"
)

// MaxPasswordLength bounds the work of hashing a password.
const MaxPasswordLength = 256

// PasswordProblem returns why password is not acceptable for the account
// with email, or "" when it is.
func PasswordProblem(password, email string) string {
	switch {
	case len([]rune(password)) < MinPasswordLength:
		return "Use at least 8 characters."
	case len(password) > MaxPasswordLength:
		return "Use at most 256 characters."
	case strings.TrimSpace(password) == "":
		return "The password cannot be only spaces."
	case commonPasswords[strings.ToLower(password)]:
		return "This password is among the most common ones; choose another."
	case email != "" && strings.EqualFold(password, email):
		return "The password cannot be your email address."
	}
	return ""
}

// commonPasswords are frequent passwords of 8 characters or more, from
// public breach-frequency lists; shorter ones fail the length rule anyway.
var commonPasswords = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range strings.Fields(`
12345678 123456789 1234567890 12345678910 password password1 password12 password123
password1234 passw0rd p@ssw0rd p@ssword qwertyuiop qwerty123 qwerty1234 qwertyui
1q2w3e4r 1q2w3e4r5t 1q2w3e4r5t6y 1qaz2wsx 1qaz2wsx3edc zaq12wsx zaq1zaq1 zxcvbnm1
asdfghjkl asdfghjk 11111111 111111111 1111111111 00000000 000000000 0000000000
12341234 12344321 87654321 987654321 9876543210 11223344 12121212 123123123
123321123 123456abc 123456789a abc12345 abcd1234 abcdefgh abcdefg1 a1b2c3d4
iloveyou iloveyou1 iloveyou2 sunshine sunshine1 princess princess1 football
football1 baseball baseball1 superman superman1 starwars starwars1 whatever
trustno1 welcome1 welcome123 letmein1 letmein123 monkey123 dragon123 master123
admin123 admin1234 administrator changeme changeme1 computer computer1 internet
michelle jennifer jessica1 charlie1 michael1 jordan23 liverpool chelsea1 arsenal1
samsung1 mustang1 corvette mercedes ferrari1 basketball hockey123 soccer123
butterfly fuckyou1 fuckyou123 ashley123 nicole123 babygirl1 lovely123 loveme123
qazwsxedc qweasdzxc q1w2e3r4 q1w2e3r4t5 1234qwer qwer1234 asdf1234 zxcv1234
aaaaaaaa aaaaaaaaa 88888888 99999999 66666666 55555555 22222222 77777777
access14 batman123 shadow12 shadow123 pokemon1 minecraft minecraft1 fortnite
secret123 default1 guest1234 test1234 testtest password! Password Password1
Password123 Password1! Welcome1 Welcome123 Qwerty123 Qwerty123! letmein!
rassylka rassylka1 rassylka123 mailing123 newsletter
`) {
		m[strings.ToLower(p)] = true
	}
	return m
}()
