package server

import (
	"time"

	"github.com/collabd/collabd/server/webhook"
)

// SignatureHeader is the HTTP header that carries Sign's value on the
// requests collabd makes to an application (the auth callback, webhooks).
const SignatureHeader = webhook.SignatureHeader

// Errors from Verify (webhook's).
var (
	ErrSignatureMalformed = webhook.ErrSignatureMalformed
	ErrSignatureStale     = webhook.ErrSignatureStale
	ErrSignatureMismatch  = webhook.ErrSignatureMismatch
)

// Sign is webhook.Sign: the Collabd-Signature value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string { return webhook.Sign(secret, t, body) }

// Verify is webhook.Verify: it checks a Collabd-Signature header against
// body, within tolerance of now. Apps written in Go call it in their
// webhook and auth-callback handlers.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	return webhook.Verify(secret, header, body, now, tolerance)
}
