package protocol_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/collabd/collabd/internal/mp"
	"github.com/collabd/collabd/protocol"
)

// frame builds a frame by hand: an array header for n elements, then raw.
func frame(n int, raw ...[]byte) []byte {
	b := mp.AppendArrayLen(nil, n)
	for _, r := range raw {
		b = append(b, r...)
	}
	return b
}

func u(v uint64) []byte   { return mp.AppendUint(nil, v) }
func s(v string) []byte   { return mp.AppendString(nil, v) }
func bin(v []byte) []byte { return mp.AppendBin(nil, v) }

func TestDecodeRejects(t *testing.T) {
	ping := protocol.Encode(&protocol.Ping{Nonce: 5})
	join := protocol.Encode(&protocol.Join{Doc: "d", SV: sv})
	svBytes := []byte{0x92, 1, 0x90}
	lim := protocol.DecodeLimits{MaxToken: 8, MaxAgents: 2, MaxDocID: 4, MaxFrame: 64}
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty input", nil, protocol.ErrTruncated},
		{"not an array", []byte{0x09}, protocol.ErrBadField},
		{"empty array", []byte{0x90}, protocol.ErrFieldCount},
		{"truncated ping", ping[:len(ping)-1], protocol.ErrTruncated},
		{"truncated join", join[:len(join)/2], protocol.ErrTruncated},
		{"array longer than input", []byte{0x93, 9, 1}, protocol.ErrTruncated},
		{"trailing byte", append(bytes.Clone(ping), 0), protocol.ErrTrailing},
		{"two frames", append(bytes.Clone(ping), ping...), protocol.ErrTrailing},
		{"type 0", frame(2, u(0), u(1)), protocol.ErrUnknownType},
		{"type 13", frame(2, u(13), u(1)), protocol.ErrUnknownType},
		{"message data not JSON", frame(4, u(12), s("d"), s(""), s("{nope")), protocol.ErrBadField},
		{"message data too long", frame(4, u(12), s("d"), s(""), s(`"`+strings.Repeat("x", 16<<10)+`"`)), protocol.ErrTooLarge},
		{"presence type 34", frame(2, u(34), u(1)), protocol.ErrUnknownType},
		{"presence-set with an identity field", frame(7, u(32), s("d"), s(""), bin(nil), bin(nil), []byte{0xc0}, s("Alice")), protocol.ErrFieldCount},
		{"presence meta key twice", frame(6, u(32), s("d"), s(""), bin(nil), bin(nil), []byte{0x82, 0xa1, 'k', 0xa0, 0xa1, 'k', 0xa0}), protocol.ErrBadField},
		{"presence meta map bomb", frame(6, u(32), s("d"), s(""), bin(nil), bin(nil), []byte{0xdf, 0xff, 0xff, 0xff, 0xff}), protocol.ErrTruncated},
		{"presence peer short", frame(6, u(33), s("d"), []byte{0xc2}, []byte{0x91, 0x92, 0xa0, 0xa0}, []byte{0x90}, []byte{0x90}), protocol.ErrFieldCount},
		{"presence moved long", frame(6, u(33), s("d"), []byte{0xc2}, []byte{0x90}, []byte{0x91, 0x96, 0xa0, 0xa0, 0xc4, 0, 0xc4, 0, 0xc0, 0xc0}, []byte{0x90}), protocol.ErrFieldCount},
		{"presence type 63", frame(2, u(63), u(1)), protocol.ErrUnknownType},
		{"type 64", frame(2, u(64), u(1)), protocol.ErrUnknownType},
		{"type 256", frame(2, u(256), u(1)), protocol.ErrBadField},
		{"type as string", frame(2, s("ping"), u(1)), protocol.ErrBadField},
		{"ping with 3 fields", frame(3, u(9), u(1), u(2)), protocol.ErrFieldCount},
		{"ping with 1 field", frame(1, u(9)), protocol.ErrFieldCount},
		{"hello with 4 fields", frame(4, u(1), u(1), s(""), frame(0)), protocol.ErrFieldCount},
		{"hello version 2", frame(5, u(1), u(2), s(""), frame(0), s("")), protocol.ErrUnsupportedVersion},
		{"hello version 2, other layout", frame(3, u(1), u(2), s("x")), protocol.ErrUnsupportedVersion},
		{"hello version 0", frame(5, u(1), u(0), s(""), frame(0), s("")), protocol.ErrUnsupportedVersion},
		{"welcome version 9", frame(4, u(2), u(9), s(""), frame(6, u(0), u(0), u(0), u(0), u(0), u(0))), protocol.ErrUnsupportedVersion},
		{"oversized token", frame(5, u(1), u(1), s("123456789"), frame(0), s("")), protocol.ErrTooLarge},
		{"oversized refresh token", frame(2, u(11), s("123456789")), protocol.ErrTooLarge},
		{"token not UTF-8", frame(2, u(11), s("\xff")), protocol.ErrBadField},
		{"too many agents", frame(5, u(1), u(1), s(""), frame(3, u(1), u(2), u(3)), s("")), protocol.ErrTooLarge},
		{"agent 0", frame(5, u(1), u(1), s(""), frame(1, u(0)), s("")), protocol.ErrBadField},
		{"agent twice", frame(5, u(1), u(1), s(""), frame(2, u(7), u(7)), s("")), protocol.ErrBadField},
		{"welcome limits of 5", frame(4, u(2), u(1), s(""), frame(5, u(0), u(0), u(0), u(0), u(0))), protocol.ErrFieldCount},
		{"welcome limit over 2^31", frame(4, u(2), u(1), s(""), frame(6, u(1<<31), u(0), u(0), u(0), u(0), u(0))), protocol.ErrBadField},
		{"empty doc id", frame(2, u(7), s("")), protocol.ErrBadDocID},
		{"long doc id", frame(2, u(7), s("abcde")), protocol.ErrBadDocID},
		{"doc id not UTF-8", frame(2, u(7), s("a\xc3")), protocol.ErrBadDocID},
		{"doc id with NUL", frame(2, u(7), s("a\x00")), protocol.ErrBadDocID},
		{"doc id with newline", frame(2, u(7), s("a\nb")), protocol.ErrBadDocID},
		{"doc id with DEL", frame(2, u(7), s("a\x7f")), protocol.ErrBadDocID},
		{"doc id with C1", frame(2, u(7), s("\u0085")), protocol.ErrBadDocID},
		{"doc id as bin", frame(2, u(7), bin([]byte("d"))), protocol.ErrBadField},
		{"join sv not a sv", frame(4, u(3), s("d"), bin([]byte{0x91, 1}), []byte{0xc2}), protocol.ErrBadField},
		{"join sv as array", frame(4, u(3), s("d"), svBytes, []byte{0xc2}), protocol.ErrBadField},
		{"join read-only as int", frame(4, u(3), s("d"), bin(svBytes), u(0)), protocol.ErrBadField},
		{"sync final without sv", frame(6, u(4), s("d"), u(0), []byte{0xc3}, bin(nil), []byte{0xc0}), protocol.ErrBadField},
		{"sync non-final with sv", frame(6, u(4), s("d"), u(0), []byte{0xc2}, bin(nil), bin(svBytes)), protocol.ErrBadField},
		{"sync update as str", frame(6, u(4), s("d"), u(0), []byte{0xc2}, s("x"), []byte{0xc0}), protocol.ErrBadField},
		{"ack status 0", frame(6, u(6), s("d"), u(1), u(0), u(0), u(0)), protocol.ErrBadField},
		{"ack status 4", frame(6, u(6), s("d"), u(1), u(4), u(0), u(0)), protocol.ErrBadField},
		{"ack batch negative", frame(6, u(6), s("d"), []byte{0xff}, u(1), u(0), u(0)), protocol.ErrBadField},
		{"error code 1000", frame(6, u(8), u(1000), s(""), u(0), s(""), u(0)), protocol.ErrBadField},
		{"error code 5000", frame(6, u(8), u(5000), s(""), u(0), s(""), u(0)), protocol.ErrBadField},
		{"error message too long", frame(6, u(8), u(4500), s(""), u(0), s(strings.Repeat("x", 1025)), u(0)), protocol.ErrTooLarge},
		{"frame over MaxFrame", frame(2, u(11), s(strings.Repeat("x", 70))), protocol.ErrTooLarge},
		{"killer array32 as frame", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, protocol.ErrTruncated},
		{"killer bin32 as update", frame(4, u(5), s("d"), u(1), []byte{0xc6, 0xff, 0xff, 0xff, 0xff}), protocol.ErrTruncated},
		{"killer array32 as agents", frame(5, u(1), u(1), s(""), []byte{0xdd, 0xff, 0xff, 0xff, 0xff}), protocol.ErrTruncated},
	} {
		l := lim
		if strings.HasPrefix(c.name, "error message") || strings.HasPrefix(c.name, "welcome") {
			l = protocol.DecodeLimits{}
		}
		m, err := protocol.Decode(c.in, l)
		var de *protocol.DecodeError
		if !errors.As(err, &de) || !errors.Is(err, c.want) {
			t.Errorf("%s: Decode(% x) = %+v, %v; want a *DecodeError wrapping %v", c.name, trim(c.in), m, err, c.want)
			continue
		}
		if m != nil {
			t.Errorf("%s: Decode returned %+v with its error", c.name, m)
		}
		if !strings.HasPrefix(err.Error(), "protocol: ") || de.Offset < 0 || de.Offset > len(c.in) {
			t.Errorf("%s: error %q (offset %d of %d bytes)", c.name, err, de.Offset, len(c.in))
		}
	}
}

func trim(b []byte) []byte { return b[:min(len(b), 24)] }

func TestDecodeErrorCode(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		lim  protocol.DecodeLimits
		want protocol.Code
	}{
		{frame(5, u(1), u(2), s(""), frame(0), s("")), protocol.DecodeLimits{}, protocol.CodeUnsupportedVersion},
		{frame(2, u(11), s("0123456789")), protocol.DecodeLimits{MaxFrame: 8}, protocol.CodeFrameTooLarge},
		{frame(2, u(11), s("0123456789")), protocol.DecodeLimits{MaxToken: 8}, protocol.CodeBadFrame},
		{frame(2, u(7), s("")), protocol.DecodeLimits{}, protocol.CodeBadDocID},
		{[]byte{0xc1}, protocol.DecodeLimits{}, protocol.CodeBadFrame},
	} {
		_, err := protocol.Decode(c.in, c.lim)
		var de *protocol.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("Decode(% x) = %v, want a *DecodeError", c.in, err)
		}
		if got := de.Code(); got != c.want {
			t.Errorf("Decode(% x).Code() = %v, want %v (%v)", c.in, got, c.want, err)
		}
	}
}

func TestDecodeAcceptsNonCanonical(t *testing.T) {
	// Other msgpack writers may use wider encodings; they decode the same.
	in := frame(2, u(9), []byte{0xcf, 0, 0, 0, 0, 0, 0, 0, 5})
	m, err := protocol.Decode(in, protocol.DecodeLimits{})
	if err != nil || m.(*protocol.Ping).Nonce != 5 {
		t.Fatalf("Decode(ping with uint64 nonce) = %+v, %v; want nonce 5", m, err)
	}
	in = append([]byte{0xdc, 0, 2}, append(u(7), 0xd9, 1, 'd')...)
	if m, err := protocol.Decode(in, protocol.DecodeLimits{}); err != nil || m.(*protocol.Leave).Doc != "d" {
		t.Fatalf("Decode(leave with array16, str8) = %+v, %v", m, err)
	}
}

func TestCheckDocID(t *testing.T) {
	for _, id := range []string{"a", "notes/2024-01", "документ", "emoji 🎉", strings.Repeat("x", 255)} {
		if err := protocol.CheckDocID(id, 0); err != nil {
			t.Errorf("CheckDocID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", strings.Repeat("x", 256), "\xff", "tab\t", "\u009f"} {
		if err := protocol.CheckDocID(id, 0); !errors.Is(err, protocol.ErrBadDocID) {
			t.Errorf("CheckDocID(%q) = %v, want ErrBadDocID", id, err)
		}
	}
}

func TestDecodeAliasesUpdateBytes(t *testing.T) {
	b := protocol.Encode(&protocol.Update{Doc: "d", Batch: 1, Update: []byte{0x94, 1, 0x90, 0x90, 0x90}})
	m, err := protocol.Decode(b, protocol.DecodeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	up := m.(*protocol.Update).Update
	if &up[0] != &b[len(b)-5] || cap(up) != len(up) {
		t.Errorf("Update bytes do not alias the frame with a capped slice")
	}
}
