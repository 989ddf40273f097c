package server_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/collabd/collabd/server"
)

func TestSignVerify(t *testing.T) {
	key := []byte("k")
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"credential":"Bearer x"}`)
	good := server.Sign(key, now, body)
	if !strings.HasPrefix(good, "t=1800000000,v1=") || len(good) != len("t=1800000000,v1=")+64 {
		t.Fatalf("Sign = %q", good)
	}
	other := server.Sign([]byte("old"), now, body)
	v1 := good[strings.Index(good, "v1="):]
	for _, c := range []struct {
		name   string
		key    []byte
		header string
		body   string
		now    time.Time
		want   error
	}{
		{"good", key, good, string(body), now, nil},
		{"within tolerance", key, good, string(body), now.Add(5 * time.Minute), nil},
		{"two secrets during a rotation", key, other + "," + v1, string(body), now, nil},
		{"unknown scheme ignored", key, good + ",v0=abc", string(body), now, nil},
		{"tampered body", key, good, `{"credential":"Bearer y"}`, now, server.ErrSignatureMismatch},
		{"wrong key", []byte("K"), good, string(body), now, server.ErrSignatureMismatch},
		{"replayed later", key, good, string(body), now.Add(5*time.Minute + time.Second), server.ErrSignatureStale},
		{"from the future", key, good, string(body), now.Add(-6 * time.Minute), server.ErrSignatureStale},
		{"timestamp swapped", key, "t=1800000001," + v1, string(body), now, server.ErrSignatureMismatch},
		{"empty", key, "", string(body), now, server.ErrSignatureMalformed},
		{"no v1", key, "t=1800000000", string(body), now, server.ErrSignatureMalformed},
		{"no t", key, v1, string(body), now, server.ErrSignatureMalformed},
		{"two t", key, "t=1," + good, string(body), now, server.ErrSignatureMalformed},
		{"short v1", key, "t=1800000000,v1=abcd", string(body), now, server.ErrSignatureMalformed},
		{"bad t", key, "t=-5," + v1, string(body), now, server.ErrSignatureMalformed},
		{"huge t", key, "t=99999999999999999999," + v1, string(body), now, server.ErrSignatureMalformed},
		{"far t", key, "t=9223372036854775807," + v1, string(body), now, server.ErrSignatureStale},
		{"huge header", key, good + strings.Repeat(",x=y", 2000), string(body), now, server.ErrSignatureMalformed},
	} {
		err := server.Verify(c.key, c.header, []byte(c.body), c.now, 5*time.Minute)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(server.Sign([]byte("k"), now, []byte("body")), []byte("body"))
	f.Add("t=1800000000,v1=00", []byte(""))
	f.Add("t=,v1=,t=", []byte("x"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := server.Verify([]byte("k"), header, body, now, 5*time.Minute)
		if err == nil && server.Sign([]byte("k"), now, body) != header && !strings.Contains(header, ",") {
			t.Fatalf("Verify accepted %q", header)
		}
	})
}
