package web

import (
	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
)

// routes is the whole route table of the web app.
func (s *Server) routes(app *fiber.App) {
	// /healthz, /readyz (health.go) and assets (assetsRoute) are mounted in
	// New, ahead of sessions and CSRF

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

	// Clients (clients.go, clients_import.go)
	app.Get("/clients", auth.RequireUser, s.listClients)
	app.Get("/clients/new", auth.RequireUser, s.newClient)
	app.Post("/clients", auth.RequireUser, s.createClient)
	app.Get("/clients/export.csv", auth.RequireUser, s.exportClients)
	app.Get("/clients/import", auth.RequireUser, s.importForm)
	app.Post("/clients/import", auth.RequireUser, s.importClients)
	app.Get("/clients/import/:id", auth.RequireUser, s.showImport)
	app.Get("/clients/:id", auth.RequireUser, s.showClient)
	app.Get("/clients/:id/edit", auth.RequireUser, s.editClient)
	app.Post("/clients/:id", auth.RequireUser, s.updateClient)
	app.Delete("/clients/:id", auth.RequireUser, s.deleteClient)
	app.Post("/clients/:id/delete", auth.RequireUser, s.deleteClient)

	// Messages (messages.go)
	app.Get("/messages", auth.RequireUser, s.listMessages)
	app.Get("/messages/new", auth.RequireUser, s.newMessage)
	app.Post("/messages", auth.RequireUser, s.createMessage)
	app.Get("/messages/:id", auth.RequireUser, s.showMessage)
	app.Get("/messages/:id/edit", auth.RequireUser, s.editMessage)
	app.Post("/messages/:id", auth.RequireUser, s.updateMessage)
	app.Delete("/messages/:id", auth.RequireUser, s.deleteMessage)
	app.Post("/messages/:id/delete", auth.RequireUser, s.deleteMessage)

	// Mailings (mailings.go)
	app.Get("/mailings", auth.RequireUser, s.listMailings)
	app.Get("/mailings/new", auth.RequireUser, s.newMailing)
	app.Post("/mailings", auth.RequireUser, s.createMailing)
	app.Get("/mailings/picker", auth.RequireUser, s.picker)
	app.Get("/mailings/picker/ids", auth.RequireUser, s.pickerIDs)
	app.Get("/mailings/:id", auth.RequireUser, s.showMailing)
	app.Get("/mailings/:id/edit", auth.RequireUser, s.editMailing)
	app.Post("/mailings/:id", auth.RequireUser, s.updateMailing)
	app.Delete("/mailings/:id", auth.RequireUser, s.deleteMailing)
	app.Post("/mailings/:id/delete", auth.RequireUser, s.deleteMailing)
	app.Post("/mailings/:id/disable", auth.RequireUser, s.setDisabled(true))
	app.Post("/mailings/:id/enable", auth.RequireUser, s.setDisabled(false))
	app.Get("/mailings/:id/attempts", auth.RequireUser, s.listAttempts)

	// Sending (sending.go)
	app.Post("/mailings/:id/send", auth.RequireUser, s.startRun(false))
	app.Post("/mailings/:id/retry", auth.RequireUser, s.startRun(true))
	app.Get("/mailings/:id/progress", auth.RequireUser, s.runProgress)
	app.Post("/clients/:id/bounce/clear", auth.RequireUser, s.clearBounce)
	app.Get("/u/:token", s.unsubscribeForm)
	app.Post("/u/:token", s.unsubscribe) // CSRF-exempt: RFC 8058 one-click

	// Statistics (stats.go)
	app.Get("/stats", auth.RequireUser, s.statsPage)

	// Users (users.go), managers only
	app.Get("/users", auth.RequireUser, auth.RequireManager, s.listUsers)
	app.Post("/users/:id/block", auth.RequireUser, auth.RequireManager, s.setBlocked(true))
	app.Post("/users/:id/unblock", auth.RequireUser, auth.RequireManager, s.setBlocked(false))
}
