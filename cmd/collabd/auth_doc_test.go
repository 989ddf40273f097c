package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// collabdToken is the Go example of docs/AUTH.md, verbatim (the test checks
// the document still holds it).
func collabdToken(secret []byte, userID, name string, docs []string) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":  userID,
		"name": name,
		"docs": docs,
		"iat":  now.Unix(),
		"exp":  now.Add(15 * time.Minute).Unix(),
	}).SignedString(secret)
}

const collabdTokenSource = `func collabdToken(secret []byte, userID, name string, docs []string) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":  userID,
		"name": name,
		"docs": docs,
		"iat":  now.Unix(),
		"exp":  now.Add(15 * time.Minute).Unix(),
	}).SignedString(secret)
}`

// TestAuthDocGoExample mints a token with docs/AUTH.md's golang-jwt example
// and has a server with that secret accept it: rw writes, r reads only,
// anything else is forbidden.
func TestAuthDocGoExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/AUTH.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), collabdTokenSource) {
		t.Fatal("docs/AUTH.md no longer holds the Go example this test runs (collabdTokenSource): update both")
	}
	secret := []byte("k2VhZ0mP5bq8Yx1nR7tLw3sD9fJc4uHa6gEo0iNvQzA")
	store, err := storage.Open(filepath.Join(t.TempDir(), "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: store, AuthSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
		if err := store.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	token, err := collabdToken(secret, "u-ann", "Ann", []string{"notes/*:rw", "wiki:r"})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close() // only the status matters
		return resp.StatusCode
	}
	edit := `{"edits": [[0, 0, "hi"]]}`
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", docPath("notes/a", "/edits"), edit, http.StatusOK},
		{"GET", docPath("notes/a", "/text"), "", http.StatusOK},
		{"GET", docPath("wiki", "/text"), "", http.StatusNotFound}, // authorized; the document does not exist
		{"POST", docPath("wiki", "/edits"), edit, http.StatusForbidden},
		{"GET", docPath("other", "/text"), "", http.StatusForbidden},
	} {
		if got := do(tc.method, tc.path, tc.body); got != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, got, tc.want)
		}
	}
}
