// Command dev holds the tools of a local run (scripts/dev); nothing in
// production uses it.
//
//	dev run PROCFILE...   run the processes of Procfiles, release first
//	dev mail              a mail catcher: SMTP in, a web page out
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dev run PROCFILE... | dev mail [-smtp ADDR] [-http ADDR]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runProcfiles(os.Args[2:])
	case "mail":
		err = mailCatcher(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}
