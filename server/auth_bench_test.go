package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerifyToken is the cost of authenticating one connection or
// HTTP request by token, per algorithm (HS256 is the reference).
func BenchmarkVerifyToken(b *testing.B) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	secret := []byte("bench-secret-bench-secret-bench-")
	claims := Claims{Docs: []string{"notes/*:rw"}, RegisteredClaims: jwt.RegisteredClaims{Subject: "u", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
	a := &authenticator{secret: secret}
	for _, k := range []crypto.PublicKey{rsaKey.Public(), ecKey.Public(), edKey.Public()} {
		alg, _ := keyAlg(k)
		a.static = append(a.static, verifyKey{alg: alg, key: k})
	}
	for _, c := range []struct {
		m   jwt.SigningMethod
		key any
	}{
		{jwt.SigningMethodHS256, secret},
		{jwt.SigningMethodRS256, rsaKey},
		{jwt.SigningMethodES256, ecKey},
		{jwt.SigningMethodEdDSA, edKey},
	} {
		tok, err := jwt.NewWithClaims(c.m, claims).SignedString(c.key)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.m.Alg(), func(b *testing.B) {
			b.ReportAllocs()
			now := time.Now()
			for b.Loop() {
				if _, err := a.verify(context.Background(), tok, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
