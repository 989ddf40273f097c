package server

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// recConn records every Write that reaches the connection and the write
// deadline in force at the time. It is not a TCP connection, so
// net.Buffers.WriteTo makes one Write per buffer: the number of Writes is
// the number of chunks corkConn sends.
type recConn struct {
	net.Conn // nil: other methods are not used
	mu       sync.Mutex
	writes   [][]byte
	at       []time.Time // the deadline of each write
	deadline time.Time
	fail     error
}

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, bytes.Clone(p))
	c.at = append(c.at, c.deadline)
	return len(p), nil
}

func (c *recConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	return nil
}

func (c *recConn) got() (n int, all string, at []time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.writes), string(bytes.Join(c.writes, nil)), c.at
}

func TestCorkConn(t *testing.T) {
	rc := &recConn{}
	c := &corkConn{Conn: rc}

	// Uncorked: straight through.
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if n, all, _ := rc.got(); n != 1 || all != "a" {
		t.Fatalf("uncorked Write: %d writes %q, want 1 \"a\"", n, all)
	}

	// Corked: ten frames from the writer and a control frame from another
	// goroutine queue in order and go out as one chunk at uncork, under the
	// batch's deadline, whatever deadline a frame's writer set.
	dl := time.Now().Add(time.Hour)
	c.cork(dl)
	var want strings.Builder
	want.WriteString("a")
	for i := range 10 {
		_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
		f := strings.Repeat(fmt.Sprint(i), 300)
		if _, err := c.Write([]byte(f)); err != nil {
			t.Fatal(err)
		}
		want.WriteString(f)
		if i == 4 {
			done := make(chan struct{})
			go func() { // a ping from the pinger
				defer close(done)
				_, _ = c.Write([]byte("PING"))
			}()
			<-done
			want.WriteString("PING")
		}
	}
	if n, _, _ := rc.got(); n != 1 {
		t.Fatalf("corked: %d writes reached the connection, want none yet", n-1)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	n, all, at := rc.got()
	if n != 2 || all != want.String() || !at[1].Equal(dl) {
		t.Fatalf("after uncork: %d writes (want 2), bytes equal %v, deadline %v (want %v)", n, all == want.String(), at[len(at)-1], dl)
	}

	// A write larger than corkDirect sends the queue and itself at once,
	// in order, without waiting for uncork.
	c.cork(dl)
	_, _ = c.Write([]byte("hdr"))
	big := bytes.Repeat([]byte("B"), corkDirect+1)
	if k, err := c.Write(big); err != nil || k != len(big) {
		t.Fatalf("big corked Write = %d, %v", k, err)
	}
	if n2, all2, _ := rc.got(); n2 != n+2 || all2 != all+"hdr"+string(big) {
		t.Fatalf("big corked Write: %d writes, want %d, in order", n2, n+2)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}

	// A failed send is uncork's error; the connection is then uncorked.
	c.cork(dl)
	_, _ = c.Write([]byte("lost"))
	boom := errors.New("boom")
	rc.mu.Lock()
	rc.fail = boom
	rc.mu.Unlock()
	if err := c.uncork(); !errors.Is(err, boom) {
		t.Fatalf("uncork after a failed send = %v, want %v", err, boom)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, boom) {
		t.Fatalf("Write after a failed uncork = %v, want the connection's error (uncorked)", err)
	}
}

// TestCorkedWebSocket runs gorilla over a corkConn on real loopback: a
// writer sends batches of frames through wsTransport.writeFrames while
// another goroutine sends control pings, and the peer gets every frame in
// order and every ping.
func TestCorkedWebSocket(t *testing.T) {
	const batches, perBatch, pings = 50, 20, 100
	up := websocket.Upgrader{WriteBufferPool: &sync.Pool{}}
	errc := make(chan error, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := &corkHijacker{ResponseWriter: w}
		conn, err := up.Upgrade(h, r, nil)
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		tr := wsTransport{conn: conn, cork: h.conn}
		if tr.cork == nil {
			errc <- errors.New("the upgrade did not go through corkHijacker")
			return
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			for range pings {
				if err := conn.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(5*time.Second)); err != nil {
					errc <- err
					return
				}
			}
		})
		for b := range batches {
			frames := make([][]byte, perBatch)
			for i := range frames {
				frames[i] = fmt.Appendf(nil, "%d/%d/%s", b, i, strings.Repeat("x", (b*perBatch+i)%700))
			}
			if b == batches/2 {
				frames[0] = bytes.Repeat([]byte("L"), corkDirect+10) // a large frame inside a batch
			}
			if err := tr.writeFrames(frames, time.Now().Add(5*time.Second)); err != nil {
				errc <- err
				return
			}
		}
		wg.Wait()
		if err := tr.writeFrames([][]byte{[]byte("end")}, time.Now().Add(5*time.Second)); err != nil {
			errc <- err
			return
		}
		// Wait for the peer to read everything and close.
		_, _, _ = conn.ReadMessage()
	}))
	defer srv.Close()

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var gotPings int
	c.SetPingHandler(func(string) error { gotPings++; return nil })
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for b := range batches {
		for i := range perBatch {
			_, data, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("frame %d/%d: %v", b, i, err)
			}
			want := fmt.Sprintf("%d/%d/", b, i)
			if b == batches/2 && i == 0 {
				if len(data) != corkDirect+10 {
					t.Fatalf("large frame: %d bytes", len(data))
				}
				continue
			}
			if !strings.HasPrefix(string(data), want) || len(data) != len(want)+(b*perBatch+i)%700 {
				t.Fatalf("frame %d/%d = %.20q (%d bytes)", b, i, data, len(data))
			}
		}
	}
	// The pings may trail the last batch; "end" follows all of them.
	if _, data, err := c.ReadMessage(); err != nil || string(data) != "end" {
		t.Fatalf("last frame = %.20q, %v; want \"end\"", data, err)
	}
	if gotPings != pings {
		t.Errorf("got %d pings, want %d", gotPings, pings)
	}
	_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}

// With a slack, a write deadline is set slack later than asked and kept
// while later asks fall within it; an earlier one (a close's short
// deadline) or a later one past it is set again; no deadline (zero) is
// always set.
func TestCorkConnDeadlineSlack(t *testing.T) {
	rc := &recConn{}
	sets := 0
	c := &corkConn{Conn: &countDeadlines{recConn: rc, n: &sets}, slack: time.Second}
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for _, step := range []struct {
		ask, want time.Time
		sets      int
	}{
		{t0, t0.Add(time.Second), 1},                                          // first: slack later
		{t0.Add(500 * time.Millisecond), t0.Add(time.Second), 1},              // within: kept
		{t0.Add(time.Second), t0.Add(time.Second), 1},                         // at it: kept
		{t0.Add(1500 * time.Millisecond), t0.Add(2500 * time.Millisecond), 2}, // past it: set again, slack later
		{t0.Add(time.Second), t0.Add(time.Second), 3},                         // more than slack earlier: exactly
		{time.Time{}, time.Time{}, 4},                                         // none
		{t0.Add(3 * time.Second), t0.Add(4 * time.Second), 5},                 // after none: set
	} {
		if err := c.SetWriteDeadline(step.ask); err != nil {
			t.Fatal(err)
		}
		rc.mu.Lock()
		got := rc.deadline
		rc.mu.Unlock()
		if !got.Equal(step.want) || sets != step.sets {
			t.Fatalf("SetWriteDeadline(%v): deadline %v after %d sets, want %v after %d", step.ask, got, sets, step.want, step.sets)
		}
	}
}

// countDeadlines counts the write deadlines set on a recConn.
type countDeadlines struct {
	*recConn
	n *int
}

func (c *countDeadlines) SetWriteDeadline(t time.Time) error {
	*c.n++
	return c.recConn.SetWriteDeadline(t)
}
