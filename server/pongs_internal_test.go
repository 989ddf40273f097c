package server

import (
	"bufio"
	"bytes"
	"fmt"
	"testing"
)

// maskedControl is a client's control frame (FIN, opcode op) with payload,
// masked with key.
func maskedControl(op byte, payload string, key [4]byte) []byte {
	f := []byte{0x80 | op, 0x80 | byte(len(payload)), key[0], key[1], key[2], key[3]}
	for i := range len(payload) {
		f = append(f, payload[i]^key[i%4])
	}
	return f
}

// takePongs takes whole, well-formed pongs from the head of the buffer and
// hands their payloads to the handler; everything from the first other
// frame (or an incomplete one) on stays for gorilla.
func TestTakePongs(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	pong := maskedControl(0xa, "", key)
	pongHi := maskedControl(0xa, "hi there", key)
	ping := maskedControl(0x9, "p", key)
	binary := []byte{0x82, 0x81, 0, 0, 0, 0, 'x'}
	unmasked := []byte{0x8a, 0x00}
	rsv := append([]byte{}, pong...)
	rsv[0] |= 0x40
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, c := range []struct {
		name    string
		in      []byte
		pongs   []string
		leftLen int
	}{
		{"empty pong", pong, []string{""}, 0},
		{"pong with payload", pongHi, []string{"hi there"}, 0},
		{"pongs then a message", cat(pong, pongHi, binary), []string{"", "hi there"}, len(binary)},
		{"message first", cat(binary, pong), nil, len(binary) + len(pong)},
		{"ping left to gorilla", cat(ping, pong), nil, len(ping) + len(pong)},
		{"incomplete pong", pongHi[:len(pongHi)-1], nil, len(pongHi) - 1},
		{"pong, then an incomplete one", cat(pong, pongHi[:7]), []string{""}, 7},
		{"unmasked", cat(unmasked, []byte{0, 0, 0, 0}), nil, 6},
		{"reserved bit", rsv, nil, len(rsv)},
	} {
		t.Run(c.name, func(t *testing.T) {
			br := bufio.NewReaderSize(bytes.NewReader(c.in), readBufferSize)
			if _, err := br.Peek(1); err != nil {
				t.Fatal(err)
			}
			var got []string
			takePongs(br, func(p string) error { got = append(got, p); return nil })
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", c.pongs) || br.Buffered() != c.leftLen {
				t.Fatalf("takePongs(% x): pongs %q, %d bytes left; want %q, %d", c.in, got, br.Buffered(), c.pongs, c.leftLen)
			}
		})
	}
}

// FuzzTakePongs: whatever a client sends, takePongs never panics, takes
// only whole pong frames from the head (what it leaves is a suffix of the
// input), and hands over payloads no longer than a control frame's 125
// bytes.
func FuzzTakePongs(f *testing.F) {
	key := [4]byte{9, 8, 7, 6}
	f.Add(maskedControl(0xa, "", key))
	f.Add(append(maskedControl(0xa, "hi", key), maskedControl(0x9, "p", key)...))
	f.Add([]byte{0x8a, 0xfd, 1, 2, 3})
	f.Add([]byte{0x82, 0x81, 0, 0, 0, 0, 'x'})
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 4096)
		if len(in) > 0 {
			_, _ = br.Peek(min(len(in), 4096)) // fill the buffer as the read loop's peek does
		}
		took := 0
		takePongs(br, func(p string) error {
			if len(p) > 125 {
				t.Fatalf("a pong payload of %d bytes", len(p))
			}
			took++
			return nil
		})
		window := in[:min(len(in), 4096)] // what the buffer held before
		rest := br.Buffered()
		if rest > len(window) {
			t.Fatalf("%d bytes left of %d", rest, len(window))
		}
		if left, _ := br.Peek(rest); !bytes.Equal(left, window[len(window)-rest:]) {
			t.Fatal("what is left is not the tail of what was buffered")
		}
		if took == 0 && rest != len(window) {
			t.Fatalf("nothing taken, yet %d of %d bytes consumed", len(window)-rest, len(window))
		}
	})
}
