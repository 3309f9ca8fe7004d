package web

import (
	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
)

// routes is the whole route table of the web app.
func (s *Server) routes(app *fiber.App) {
	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.readyz)
	app.Get(assetsRoute, s.asset)

	app.Get("/", s.home)

	// Accounts (account.go, oauth.go)
	app.Get("/register", s.registerForm)
	app.Post("/register", s.register)
	app.Get("/register/sent", s.registerSent)
	app.Get("/confirm/:token", s.confirm)
	app.Post("/confirm/resend", s.resendConfirmation)
	app.Get("/login", s.loginForm)
	app.Post("/login", s.login)
	app.Post("/logout", s.logout)
	app.Get("/password/forgot", s.forgotForm)
	app.Post("/password/forgot", s.forgot)
	app.Get("/password/forgot/sent", s.forgotSent)
	app.Get("/password/reset/:token", s.resetForm)
	app.Post("/password/reset/:token", s.reset)
	app.Get("/auth/:provider", s.oauthBegin)
	app.Get("/auth/:provider/callback", s.oauthCallback)
	app.Get("/account", auth.RequireUser, s.accountPage)
	app.Post("/account", auth.RequireUser, s.updateProfile)
	app.Post("/account/password", auth.RequireUser, s.changePassword)
	app.Post("/account/identities/:id/delete", auth.RequireUser, s.unlinkIdentity)
}
