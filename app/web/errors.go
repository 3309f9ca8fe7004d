package web

import (
	"errors"
	"log/slog"
	"net"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/views/layout"
)

// handleError is the app's one error handler: it logs a 5xx once, with the
// request id, and answers every error with a friendly page that never shows
// internal error text.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	status := fiber.StatusInternalServerError
	var fe *fiber.Error
	var r refusal
	switch {
	case errors.As(err, &r):
		status = r.status
	case errors.As(err, &fe):
		status = fe.Code
	case errors.As(err, new(*net.OpError)):
		// PostgreSQL or Redis cannot be reached: the request may succeed
		// once they are back (a load balancer may try another instance).
		status = fiber.StatusServiceUnavailable
	}
	if status >= 500 {
		s.log.LogAttrs(c.UserContext(), slog.LevelError, "request failed",
			slog.String("request_id", RequestID(c)),
			slog.String("method", c.Method()),
			slog.String("path", logPath(c)),
			slog.Int("status", status),
			slog.String("error", err.Error()),
		)
	}
	view := errorView(status)
	if errors.Is(err, auth.ErrCSRF) {
		view.Message = "This form has expired, or was sent from another page. Reload the page and try again."
		view.FormExpired = true
	}
	if r.message != "" {
		view.Message = r.message
	}
	c.Response().ResetBody()
	p := s.page(c, view.Title)
	if isHTMX(c) {
		return render(c, status, layout.ErrorContent(p, view))
	}
	return render(c, status, layout.ErrorPage(p, view))
}

// refusal is an error whose message is meant for the person refused:
// the error page says it instead of its status's general words.
type refusal struct {
	status  int
	message string
}

func (r refusal) Error() string { return r.message }

func errorView(status int) layout.ErrorView {
	v := layout.ErrorView{Status: status}
	switch status {
	case fiber.StatusBadRequest:
		v.Title, v.Message = "Bad request", "The request could not be understood. Please check what you sent and try again."
	case fiber.StatusForbidden:
		v.Title, v.Message = "Not allowed", "You are not allowed to do that."
	case fiber.StatusNotFound:
		v.Title, v.Message = "Page not found", "There is nothing here. It may have been deleted, or the address may be mistyped."
	case fiber.StatusMethodNotAllowed:
		v.Title, v.Message = "Not allowed", "This address does not accept that kind of request."
	case fiber.StatusRequestEntityTooLarge:
		v.Title, v.Message = "Too large", "What you sent is larger than Rassylka accepts (a CSV import may be up to 20 MB)."
	case fiber.StatusTooManyRequests:
		v.Title, v.Message = "Too many attempts", "Please wait a while before trying again."
	case fiber.StatusServiceUnavailable:
		v.Title, v.Message = "Temporarily unavailable", "Rassylka cannot serve this right now. Please try again in a moment."
	default:
		if status >= 500 {
			v.Title, v.Message = "Something went wrong", "We could not complete your request. It has been logged; please try again."
		} else {
			v.Title, v.Message = "Request refused", "The request could not be completed."
		}
	}
	return v
}
