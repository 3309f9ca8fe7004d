package web

import (
	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
)

// routes is the whole route table of the web app.
func (s *Server) routes(app *fiber.App) {
	// /healthz, /readyz (health.go) and assets (assetsRoute) are mounted in
	// New, ahead of sessions and CSRF

	// A state-changing route checks the CSRF token first: post and del.
	post := func(path string, h ...fiber.Handler) {
		app.Post(path, append([]fiber.Handler{auth.CheckCSRF}, h...)...)
	}
	del := func(path string, h ...fiber.Handler) {
		app.Delete(path, append([]fiber.Handler{auth.CheckCSRF}, h...)...)
	}

	app.Get("/", s.home)

	// Accounts (account.go, oauth.go)
	app.Get("/register", s.registerForm)
	post("/register", s.register)
	app.Get("/register/sent", s.registerSent)
	app.Get("/confirm/:token", s.confirm)
	post("/confirm/resend", s.resendConfirmation)
	app.Get("/login", s.loginForm)
	post("/login", s.login)
	post("/logout", s.logout)
	app.Get("/password/forgot", s.forgotForm)
	post("/password/forgot", s.forgot)
	app.Get("/password/forgot/sent", s.forgotSent)
	app.Get("/password/reset/:token", s.resetForm)
	post("/password/reset/:token", s.reset)
	app.Get("/auth/:provider", s.oauthBegin)
	app.Get("/auth/:provider/callback", s.oauthCallback)
	app.Get("/account", auth.RequireUser, s.accountPage)
	post("/account/reply-to/cancel", auth.RequireUser, s.cancelReplyTo)
	// Mailed to a reply address: no session needed; the page asks, the form agrees.
	app.Get("/account/reply-to/:token", s.replyToForm)
	post("/account/reply-to/:token", s.confirmReplyTo)
	post("/account/email", auth.RequireUser, s.changeEmail)
	post("/account/email/cancel", auth.RequireUser, s.cancelEmailChange)
	// The link mailed to the old address after a move: no session needed.
	app.Get("/account/email/revert/:token", s.revertForm)
	post("/account/email/revert/:token", s.revertEmail)
	// The link mailed to a new address: no session needed.
	app.Get("/account/email/:token", s.emailChangeForm)
	post("/account/email/:token", s.confirmEmailChange)
	post("/account", auth.RequireUser, s.updateProfile)
	post("/account/password", auth.RequireUser, s.changePassword)
	// A refused change is shown at its form's address: Enter in the
	// address bar there opens the account page.
	app.Get("/account/password", auth.RequireUser, func(c *fiber.Ctx) error { return c.Redirect("/account", fiber.StatusSeeOther) })
	app.Get("/account/email", auth.RequireUser, func(c *fiber.Ctx) error { return c.Redirect("/account", fiber.StatusSeeOther) })
	post("/account/identities/:id/delete", auth.RequireUser, s.unlinkIdentity)

	// Clients (clients.go, clients_import.go)
	app.Get("/clients", auth.RequireUser, s.listClients)
	app.Get("/clients/new", auth.RequireUser, s.newClient)
	post("/clients", auth.RequireUser, s.createClient)
	app.Get("/clients/export.csv", auth.RequireUser, s.exportClients)
	app.Get("/clients/import", auth.RequireUser, s.importForm)
	// The upload is read for its token only once a signed-in user sent it.
	app.Post(importPath, auth.RequireUser, s.importTooLarge, auth.CheckCSRF, s.importClients)
	app.Get("/clients/import/:id", auth.RequireUser, s.showImport)
	app.Get("/clients/:id", auth.RequireUser, s.showClient)
	app.Get("/clients/:id/edit", auth.RequireUser, s.editClient)
	post("/clients/:id", auth.RequireUser, s.updateClient)
	del("/clients/:id", auth.RequireUser, s.deleteClient)
	post("/clients/:id/delete", auth.RequireUser, s.deleteClient)

	// Messages (messages.go)
	app.Get("/messages", auth.RequireUser, s.listMessages)
	app.Get("/messages/new", auth.RequireUser, s.newMessage)
	post("/messages", auth.RequireUser, s.createMessage)
	app.Get("/messages/:id", auth.RequireUser, s.showMessage)
	app.Get("/messages/:id/edit", auth.RequireUser, s.editMessage)
	post("/messages/:id", auth.RequireUser, s.updateMessage)
	del("/messages/:id", auth.RequireUser, s.deleteMessage)
	post("/messages/:id/delete", auth.RequireUser, s.deleteMessage)
	post("/messages/:id/test", auth.RequireUser, s.sendTest)

	// Mailings (mailings.go)
	app.Get("/mailings", auth.RequireUser, s.listMailings)
	app.Get("/mailings/new", auth.RequireUser, s.newMailing)
	post("/mailings", auth.RequireUser, s.createMailing)
	app.Get("/mailings/picker", auth.RequireUser, s.picker)
	app.Get("/mailings/picker/ids", auth.RequireUser, s.pickerIDs)
	post("/mailings/picker/chosen", auth.RequireUser, s.pickerChosen)
	app.Get("/mailings/:id", auth.RequireUser, s.showMailing)
	app.Get("/mailings/:id/edit", auth.RequireUser, s.editMailing)
	post("/mailings/:id", auth.RequireUser, s.updateMailing)
	del("/mailings/:id", auth.RequireUser, s.deleteMailing)
	post("/mailings/:id/delete", auth.RequireUser, s.deleteMailing)
	post("/mailings/:id/disable", auth.RequireUser, s.setDisabled(true))
	post("/mailings/:id/enable", auth.RequireUser, s.setDisabled(false))
	app.Get("/mailings/:id/attempts", auth.RequireUser, s.listAttempts)
	app.Get("/mailings/:id/attempts.csv", auth.RequireUser, s.exportAttempts)

	// Sending (sending.go)
	post("/mailings/:id/send", auth.RequireUser, s.startRun(toEveryone))
	post("/mailings/:id/retry", auth.RequireUser, s.startRun(toFailed))
	post("/mailings/:id/rest", auth.RequireUser, s.startRun(toRest))
	app.Get("/mailings/:id/progress", auth.RequireUser, s.runProgress)
	post("/clients/:id/bounce/clear", auth.RequireUser, s.clearBounce)
	post("/clients/bounces/clear", auth.RequireUser, s.clearBounces)
	app.Get("/u/:token", s.unsubscribeForm)
	app.Post("/u/:token", s.unsubscribe) // no CSRF token: RFC 8058 one-click, sent by mail providers
	post("/u/:token/resubscribe", s.resubscribe)

	// Statistics (stats.go)
	app.Get("/stats", auth.RequireUser, s.statsPage)

	// Users (users.go), managers only
	app.Get("/users", auth.RequireUser, auth.RequireManager, s.listUsers)
	post("/users/:id/block", auth.RequireUser, auth.RequireManager, s.setBlocked(true))
	post("/users/:id/unblock", auth.RequireUser, auth.RequireManager, s.setBlocked(false))
}
