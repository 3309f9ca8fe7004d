package component

import "context"

type csrfKey struct{}

// WithCSRF carries the request's CSRF token to the components rendered
// with ctx, for forms deep in a list (a row's Delete) that no view passes
// it to.
func WithCSRF(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, csrfKey{}, token)
}

// csrfOf is the token WithCSRF put in ctx.
func csrfOf(ctx context.Context) string {
	token, _ := ctx.Value(csrfKey{}).(string)
	return token
}
