package collab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// Errors of the client. Server errors arrive as *protocol.Error.
var (
	ErrClosed = errors.New("collab: client closed")
	ErrLeft   = errors.New("collab: document left")
	// ErrNotConnected: a message cannot be sent while the document is not
	// synced on a live connection (messages are ephemeral, never queued).
	ErrNotConnected = errors.New("collab: not connected")
)

// ClientName is sent in Hello.
const ClientName = "collab-go/0.1"

// Options configure a Client. The zero value is valid.
type Options struct {
	// Token is the auth token sent in Hello; "" in development mode.
	Token string
	// Agent is the replica id of this client's edits; 0 picks a random one.
	// It is kept across reconnects of one Client. Two live clients must not
	// share it.
	Agent crdt.AgentID
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// BackoffBase and BackoffMax shape the reconnect delay:
	// retryAfter + rand[0,1) × min(BackoffMax, BackoffBase × 2^attempt).
	// Zero means protocol.BackoffBase and protocol.BackoffMax.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Dialer opens the WebSocket; nil means websocket.DefaultDialer. Its
	// NetDialContext is the hook tests use to cut connections.
	Dialer *websocket.Dialer
	// JoinTimeout: a Join the server answered with neither a sync chunk
	// nor an error within it is sent again (Leave, then Join), as after a
	// retryable error: a safety net for an answer lost on the server's
	// side (a cluster's forwarding). Zero is DefaultJoinTimeout; negative
	// never retries.
	JoinTimeout time.Duration
}

// DefaultJoinTimeout is Options.JoinTimeout's default: longer than a
// cluster's failover (a Join waits for a dead owner's lease and the
// document's load, 20 s at worst measured with a 2 s lease TTL), so that a
// slow answer is not asked for twice.
const DefaultJoinTimeout = 30 * time.Second

// Client is a connection to a collabd server that survives disconnects.
// Create it with Dial and stop it with Close.
type Client struct {
	url   string
	opts  Options
	agent crdt.AgentID
	log   *slog.Logger

	reqs   chan func()   // run on the loop
	events chan event    // from the reader, writer and dialer goroutines
	quit   chan struct{} // closed by Close
	done   chan struct{} // closed when the loop has stopped
	once   sync.Once
	wg     sync.WaitGroup // every goroutine of the client

	// owned by the loop
	cn        *conn // nil while disconnected
	dialing   bool
	attempt   int       // consecutive failed connections
	upSince   time.Time // when the current connection was welcomed
	reconnect time.Time // zero: not scheduled
	retryHint time.Duration
	docs      map[string]*docState
	nextBatch uint64
	err       error // terminal error: the client has stopped
	welcomed  []chan error
	limits    protocol.Limits
	session   string // Welcome.Session of the current connection
}

// conn is one WebSocket connection with its reader and writer goroutines.
type conn struct {
	ws      *websocket.Conn
	out     chan []byte   // to the writer
	stop    chan struct{} // closed when the loop drops the connection
	sendq   [][]byte      // frames waiting for the writer (owned by the loop)
	welcome bool
}

type event struct {
	cn  *conn
	ws  *websocket.Conn // dial result
	msg protocol.Message
	err error
}

// Dial connects to url (ws://host/v1/ws), says hello and returns once the
// server has welcomed the client, or with the error that prevented it.
// Later disconnects are repaired in the background.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Dialer == nil {
		opts.Dialer = websocket.DefaultDialer
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = protocol.BackoffBase
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = protocol.BackoffMax
	}
	if opts.JoinTimeout == 0 {
		opts.JoinTimeout = DefaultJoinTimeout
	}
	agent := opts.Agent
	if agent == 0 {
		agent = crdt.NewAgentID()
	}
	c := &Client{
		url:    url,
		opts:   opts,
		agent:  agent,
		log:    opts.Logger.With("agent", uint64(agent)),
		reqs:   make(chan func()),
		events: make(chan event),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		docs:   make(map[string]*docState),
	}
	ws, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	welcomed := make(chan error, 1)
	c.welcomed = append(c.welcomed, welcomed)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.loop(ws)
	}()
	select {
	case err = <-welcomed:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// Agent is the client's agent id.
func (c *Client) Agent() crdt.AgentID { return c.agent }

// Done is closed when the client has stopped: after Close, or after a
// terminal error (see Err).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err reports why the client stopped: a terminal *protocol.Error, ErrClosed
// after Close, or nil while it runs.
func (c *Client) Err() error {
	var err error
	if c.do(func() { err = c.err }) != nil {
		<-c.done
		return c.err // the loop has exited: c.err is final
	}
	return err
}

// Close stops the client: it closes the connection (unsent edits are lost)
// and waits for its goroutines.
func (c *Client) Close() error {
	c.once.Do(func() { close(c.quit) })
	c.wg.Wait()
	return nil
}

// do runs f on the loop and waits for it.
func (c *Client) do(f func()) error {
	ran := make(chan struct{})
	select {
	case c.reqs <- func() { f(); close(ran) }:
	case <-c.done:
		return c.stoppedErr()
	}
	<-ran // the loop runs f before anything else
	return nil
}

func (c *Client) stoppedErr() error {
	<-c.done
	if c.err != nil {
		return c.err
	}
	return ErrClosed
}

func (c *Client) dial(ctx context.Context) (*websocket.Conn, error) {
	ws, resp, err := c.opts.Dialer.DialContext(ctx, c.url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("collab: dial: %w", err)
	}
	return ws, nil
}

// loop is the client's owner goroutine.
func (c *Client) loop(ws *websocket.Conn) {
	defer close(c.done)
	c.attach(ws)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var out chan<- []byte
		var next []byte
		if c.cn != nil && len(c.cn.sendq) > 0 {
			out, next = c.cn.out, c.cn.sendq[0]
		}
		wake := c.nextWake()
		var timerC <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(max(time.Until(wake), 0))
			timerC = timer.C
		}
		select {
		case <-c.quit:
			c.stop(ErrClosed)
			return
		case f := <-c.reqs:
			f()
		case out <- next:
			c.cn.sendq[0] = nil
			c.cn.sendq = c.cn.sendq[1:]
		case e := <-c.events:
			c.handle(e)
		case <-timerC:
			c.wake()
		}
		if timerC != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if c.err != nil {
			c.stop(c.err)
			return
		}
	}
}

// stop ends the loop: the connection is closed and every waiter fails.
func (c *Client) stop(err error) {
	if c.err == nil {
		c.err = err
	}
	c.drop(websocket.CloseNormalClosure)
	for _, w := range c.welcomed {
		w <- c.err
	}
	c.welcomed = nil
	for _, d := range c.docs {
		d.fail(c.err)
	}
	// Goroutines sending events select on quit; make sure it is closed.
	c.once.Do(func() { close(c.quit) })
}

// attach starts the reader and writer of a new connection and says hello.
func (c *Client) attach(ws *websocket.Conn) {
	cn := &conn{ws: ws, out: make(chan []byte), stop: make(chan struct{})}
	c.cn = cn
	cn.sendq = append(cn.sendq, protocol.Encode(&protocol.Hello{
		Version: protocol.Version, Token: c.opts.Token, Agents: []crdt.AgentID{c.agent}, Client: ClientName,
	}))
	ws.SetPingHandler(pingHandler(ws, 30*time.Second))
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.reader(cn)
	}()
	go func() {
		defer c.wg.Done()
		c.writer(cn)
	}()
}

// drop closes the current connection (with a close frame of code, if the
// socket still takes one) and marks every document as not live.
func (c *Client) drop(code int) {
	cn := c.cn
	if cn == nil {
		return
	}
	c.cn = nil
	c.session = ""
	close(cn.stop)
	if code != 0 {
		_ = cn.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
	}
	_ = cn.ws.Close() // ends the reader
	for _, d := range c.docs {
		d.disconnected()
	}
}

// send queues a frame on the current connection, if any.
func (c *Client) send(m protocol.Message) {
	if c.cn != nil {
		c.cn.sendq = append(c.cn.sendq, protocol.Encode(m))
	}
}

func (c *Client) emit(cn *conn, e event) {
	select {
	case c.events <- e:
	case <-cn.stop:
	case <-c.quit:
	}
}

// reader decodes frames and hands them to the loop. It sets its own read
// deadline from the Welcome's keepalive settings.
func (c *Client) reader(cn *conn) {
	idle := 30 * time.Second // until Welcome says otherwise
	for {
		_ = cn.ws.SetReadDeadline(time.Now().Add(idle))
		typ, b, err := cn.ws.ReadMessage()
		if err != nil {
			c.emit(cn, event{cn: cn, err: err})
			return
		}
		if typ != websocket.BinaryMessage {
			continue
		}
		m, err := protocol.Decode(b, protocol.DecodeLimits{MaxFrame: 4 << 20})
		if err != nil {
			c.emit(cn, event{cn: cn, err: fmt.Errorf("collab: bad frame from server: %w", err)})
			return
		}
		if w, ok := m.(*protocol.Welcome); ok && w.Limits.PingIntervalMs > 0 {
			idle = time.Duration(w.Limits.PingIntervalMs+w.Limits.PongTimeoutMs) * time.Millisecond
			cn.ws.SetPingHandler(pingHandler(cn.ws, idle))
		}
		c.emit(cn, event{cn: cn, msg: m})
	}
}

func pingHandler(ws *websocket.Conn, idle time.Duration) func(string) error {
	return func(data string) error {
		_ = ws.SetReadDeadline(time.Now().Add(idle))
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	}
}

// writer writes the frames the loop hands it.
func (c *Client) writer(cn *conn) {
	for {
		select {
		case b := <-cn.out:
			_ = cn.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := cn.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
				c.emit(cn, event{cn: cn, err: err})
				return
			}
		case <-cn.stop:
			return
		}
	}
}

// handle processes an event from a goroutine of the client.
func (c *Client) handle(e event) {
	if e.cn == nil { // a dial attempt ended
		c.dialing = false
		if e.err != nil {
			c.log.Debug("reconnect failed", "err", e.err)
			c.schedule()
			return
		}
		c.attach(e.ws)
		return
	}
	if e.cn != c.cn {
		return // a connection already dropped
	}
	if e.err != nil {
		c.connLost(e.err)
		return
	}
	c.message(e.msg)
}

// connLost handles the end of the current connection.
func (c *Client) connLost(err error) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseNoStatusReceived {
		code := protocol.Code(ce.Code)
		if !code.Retry() {
			pe := &protocol.Error{Code: code, Message: ce.Text}
			c.log.Warn("connection closed with a terminal code", "code", code, "reason", ce.Text)
			c.err = pe
			return
		}
	}
	c.log.Debug("connection lost", "err", err)
	c.drop(0)
	c.schedule()
}

// schedule plans the next connection attempt with backoff and jitter.
func (c *Client) schedule() {
	if !c.upSince.IsZero() && time.Since(c.upSince) >= 30*time.Second {
		c.attempt = 0
	}
	c.upSince = time.Time{}
	d := backoff(c.attempt, c.retryHint, rand.Float64(), c.opts.BackoffBase, c.opts.BackoffMax)
	c.attempt++
	c.retryHint = 0
	c.reconnect = time.Now().Add(d)
}

// backoff is protocol.Backoff with a configurable base and cap.
func backoff(attempt int, retryAfter time.Duration, r float64, base, maxDelay time.Duration) time.Duration {
	if base == protocol.BackoffBase && maxDelay == protocol.BackoffMax {
		return protocol.Backoff(attempt, retryAfter, r)
	}
	d := maxDelay
	if attempt < 62 && base<<attempt > 0 && base<<attempt < maxDelay {
		d = base << attempt
	}
	return retryAfter + time.Duration(r*float64(d))
}

// nextWake is the earliest timed action: a reconnect, a document retry or
// a presence send.
func (c *Client) nextWake() time.Time {
	t := c.presenceWake()
	if c.cn == nil && !c.dialing && !c.reconnect.IsZero() && (t.IsZero() || c.reconnect.Before(t)) {
		t = c.reconnect
	}
	if c.cn != nil && c.cn.welcome {
		for _, d := range c.docs {
			if !d.retryAt.IsZero() && (t.IsZero() || d.retryAt.Before(t)) {
				t = d.retryAt
			}
			if !d.joinDeadline.IsZero() && (t.IsZero() || d.joinDeadline.Before(t)) {
				t = d.joinDeadline
			}
		}
	}
	return t
}

func (c *Client) wake() {
	now := time.Now()
	if c.cn == nil && !c.dialing && !c.reconnect.IsZero() && !now.Before(c.reconnect) {
		c.reconnect = time.Time{}
		c.dialing = true
		ctx, cancel := context.WithCancel(context.Background())
		c.wg.Add(2)
		go func() { // cancels the dial on Close
			defer c.wg.Done()
			select {
			case <-c.quit:
			case <-ctx.Done():
			}
			cancel()
		}()
		go func() {
			defer c.wg.Done()
			defer cancel()
			ws, err := c.dial(ctx)
			select {
			case c.events <- event{ws: ws, err: err}:
			case <-c.quit:
				if ws != nil {
					_ = ws.Close()
				}
			}
		}()
	}
	if c.cn != nil && c.cn.welcome {
		for _, d := range c.docs {
			if !d.retryAt.IsZero() && !now.Before(d.retryAt) {
				d.retryAt = time.Time{}
				c.rejoin(d)
			}
			if !d.joinDeadline.IsZero() && !now.Before(d.joinDeadline) {
				c.log.Warn("join not answered; joining again", "doc", d.id, "after", c.opts.JoinTimeout)
				c.rejoin(d)
			}
			c.flushPresence(d, now)
		}
	}
}

// message handles one frame from the server.
func (c *Client) message(m protocol.Message) {
	switch m := m.(type) {
	case *protocol.Welcome:
		c.cn.welcome = true
		c.session = m.Session
		c.limits = m.Limits
		c.upSince = time.Now()
		for _, w := range c.welcomed {
			w <- nil
		}
		c.welcomed = nil
		for _, d := range c.docs {
			d.retryAt = time.Time{}
			c.join(d)
		}
	case *protocol.Sync:
		if d := c.docs[m.Doc]; d != nil {
			c.sync(d, m)
		}
	case *protocol.Update:
		if d := c.docs[m.Doc]; d != nil && d.live {
			c.remote(d, m.Update)
		}
	case *protocol.Ack:
		if d := c.docs[m.Doc]; d != nil {
			d.ack(m)
		}
	case *protocol.Presence:
		if d := c.docs[m.Doc]; d != nil && (d.live || d.joining) {
			d.pres.apply(m)
		}
	case *protocol.Broadcast:
		if d := c.docs[m.Doc]; d != nil && !d.left {
			select {
			case d.messages <- Message{From: m.From, Data: m.Data}:
			default: // the reader is behind: ephemeral messages are dropped
			}
		}
	case *protocol.Error:
		c.serverError(m)
	case *protocol.Ping:
		c.send(&protocol.Pong{Nonce: m.Nonce})
	case *protocol.Pong:
	default:
		c.log.Warn("unexpected frame from server", "type", m.Type())
	}
}

// serverError handles an Error frame.
func (c *Client) serverError(e *protocol.Error) {
	hint := time.Duration(e.RetryAfterMs) * time.Millisecond
	if e.Doc == "" { // a connection error: the close follows
		c.retryHint = max(c.retryHint, hint)
		if !e.Code.Retry() {
			c.log.Warn("terminal connection error", "code", e.Code, "msg", e.Message)
			c.err = e
		}
		return
	}
	d := c.docs[e.Doc]
	if d == nil {
		return
	}
	c.log.Debug("document error", "doc", e.Doc, "code", e.Code, "batch", e.Batch, "msg", e.Message)
	if c.presenceError(d, e) {
		return
	}
	if e.Code == protocol.CodeNotJoined && e.Batch == 0 && d.joining {
		// The answer to the Leave a rejoin sends before its Join when the
		// server had refused the previous Join with a retryable error (join
		// rate, overloaded, a cluster owner not reachable yet): it never
		// joined the document. The Join that follows is answered on its own.
		return
	}
	if e.Batch == 0 {
		d.joinDeadline = time.Time{} // answered: a refusal of the Join, or an error that makes it rejoin
	}
	if !e.Code.Retry() {
		d.terminal(e)
		return
	}
	// Retry: resync the document (rejoin, resend unacked batches) after
	// backoff, never sooner than the hint.
	d.retries++
	d.live = false
	d.retryAt = time.Now().Add(backoff(d.retries-1, hint, rand.Float64(), c.opts.BackoffBase, c.opts.BackoffMax))
}
