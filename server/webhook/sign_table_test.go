package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignVerifyTable(t *testing.T) {
	key := []byte("k")
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"credential":"Bearer x"}`)
	good := Sign(key, now, body)
	if !strings.HasPrefix(good, "t=1800000000,v1=") || len(good) != len("t=1800000000,v1=")+64 {
		t.Fatalf("Sign = %q", good)
	}
	other := Sign([]byte("old"), now, body)
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
		{"tampered body", key, good, `{"credential":"Bearer y"}`, now, ErrSignatureMismatch},
		{"wrong key", []byte("K"), good, string(body), now, ErrSignatureMismatch},
		{"replayed later", key, good, string(body), now.Add(5*time.Minute + time.Second), ErrSignatureStale},
		{"from the future", key, good, string(body), now.Add(-6 * time.Minute), ErrSignatureStale},
		{"timestamp swapped", key, "t=1800000001," + v1, string(body), now, ErrSignatureMismatch},
		{"empty", key, "", string(body), now, ErrSignatureMalformed},
		{"no v1", key, "t=1800000000", string(body), now, ErrSignatureMalformed},
		{"no t", key, v1, string(body), now, ErrSignatureMalformed},
		{"two t", key, "t=1," + good, string(body), now, ErrSignatureMalformed},
		{"short v1", key, "t=1800000000,v1=abcd", string(body), now, ErrSignatureMalformed},
		{"bad t", key, "t=-5," + v1, string(body), now, ErrSignatureMalformed},
		{"huge t", key, "t=99999999999999999999," + v1, string(body), now, ErrSignatureMalformed},
		{"far t", key, "t=9223372036854775807," + v1, string(body), now, ErrSignatureStale},
		{"huge header", key, good + strings.Repeat(",x=y", 2000), string(body), now, ErrSignatureMalformed},
	} {
		err := Verify(c.key, c.header, []byte(c.body), c.now, 5*time.Minute)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzVerifyHeader(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(Sign([]byte("k"), now, []byte("body")), []byte("body"))
	f.Add("t=1800000000,v1=00", []byte(""))
	f.Add("t=,v1=,t=", []byte("x"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := Verify([]byte("k"), header, body, now, 5*time.Minute)
		if err == nil && Sign([]byte("k"), now, body) != header && !strings.Contains(header, ",") {
			t.Fatalf("Verify accepted %q", header)
		}
	})
}
