package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
)

// A token in Options reaches the server in Hello; no token is a terminal
// error that Dial reports; a document the token does not grant is a
// terminal document error that Join reports.
func TestAuthTokenAndTerminalErrors(t *testing.T) {
	secret := []byte("e2e-secret-that-is-32-bytes-long")
	ts := startServer(t, server.Config{AuthSecret: secret})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := collab.Dial(ctx, ts.url(), collab.Options{})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeUnauthorized {
		t.Fatalf("Dial without token = %v, want unauthorized", err)
	}

	tok, err := server.NewToken(secret, server.Claims{Docs: []string{"team/*:rw"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := collab.Dial(ctx, ts.url(), collab.Options{Token: tok})
	if err != nil {
		t.Fatalf("Dial with token: %v", err)
	}
	defer c.Close()
	d, err := c.Join(ctx, "team/a")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Insert("body", 0, "ok"); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(ctx, "other"); !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden {
		t.Fatalf("Join of an ungranted document = %v, want forbidden", err)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("client stopped after a document error: %v", err)
	}
}
