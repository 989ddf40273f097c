package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collabd/collabd/server"
)

// docFlags collects repeated -doc flags.
type docFlags []string

func (d *docFlags) String() string { return strings.Join(*d, ",") }
func (d *docFlags) Set(v string) error {
	if err := checkGrant(v); err != nil {
		return err
	}
	*d = append(*d, v)
	return nil
}

// checkGrant refuses a --doc value the server would refuse, naming the
// accepted forms.
func checkGrant(g string) error {
	i := strings.LastIndexByte(g, ':')
	if i <= 0 || (g[i+1:] != "r" && g[i+1:] != "rw") {
		return fmt.Errorf("%q is not a grant: want PATTERN:r (read) or PATTERN:rw (read and write), e.g. 'notes/*:rw' or 'wiki:r' ('*' matches any characters; see docs/AUTH.md)", g)
	}
	return nil
}

// runToken implements "collabd token": mint a signed token for development
// and scripts. The secret may come from COLLABD_AUTH_SECRET.
func runToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("auth-secret", "", "signing `secret` (the server's --auth-secret)")
	sub := fs.String("sub", "", "subject: the user id (required)")
	name := fs.String("name", "", "display name shown to other users")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime")
	color := fs.String("color", "", "cursor color (CSS), e.g. #e5484d (default: derived from the subject)")
	issuer := fs.String("iss", "", "issuer claim (the server's --auth-issuer, when it checks one)")
	audience := fs.String("aud", "", "audience claim (the server's --auth-audience, when it checks one)")
	var docs docFlags
	fs.Var(&docs, "doc", "document grant `pattern:r|rw` ('*' matches anything); repeatable")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := envDefaults(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "collabd token: %v\n", err)
		return 2
	}
	if *secret == "" || *sub == "" || len(docs) == 0 {
		fmt.Fprintln(stderr, "collabd token: -auth-secret (or COLLABD_AUTH_SECRET), -sub and at least one -doc are required")
		fs.Usage()
		return 2
	}
	if err := checkSecret(*secret); err != nil {
		fmt.Fprintf(stderr, "collabd token: %v\n", err)
		return 2
	}
	now := time.Now()
	reg := jwt.RegisteredClaims{Subject: *sub, Issuer: *issuer, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(*ttl))}
	if *audience != "" {
		reg.Audience = jwt.ClaimStrings{*audience}
	}
	tok, err := server.NewToken([]byte(*secret), server.Claims{Name: *name, Color: *color, Docs: docs, RegisteredClaims: reg})
	if err != nil {
		fmt.Fprintf(stderr, "collabd token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// MinSecretBytes is the shortest --auth-secret serve and token accept: an
// HMAC-SHA256 key shorter than its 32-byte output can be guessed offline
// from any one token.
const MinSecretBytes = 32

// checkSecret refuses a token signing secret that is too short, and says
// how to make a good one.
func checkSecret(secret string) error {
	if len(secret) < MinSecretBytes {
		return fmt.Errorf("--auth-secret is %d bytes; it must be at least %d random bytes: "+
			"make one with `head -c 32 /dev/urandom | base64` and pass it with --auth-secret or COLLABD_AUTH_SECRET",
			len(secret), MinSecretBytes)
	}
	return nil
}
