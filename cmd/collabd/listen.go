package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// certReloader serves a TLS certificate that Reload replaces (on SIGHUP):
// renewed certificates take effect without a restart, and a reload that
// fails keeps the certificate in use.
type certReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the certificate and key files again.
func (r *certReloader) Reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	r.cert.Store(&c)
	return nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// newHTTPServer is the public server: HTTP/1.1 and HTTP/2, over TLS when
// certs is set (ALPN h2: browsers multiplex every SSE feed of a page on
// one connection, past HTTP/1.1's 6 per origin), else cleartext HTTP/2
// (h2c, prior knowledge) for proxies that speak it. WebSockets upgrade over
// HTTP/1.1 (wss:// with TLS).
func newHTTPServer(h http.Handler, certs *certReloader, log *slog.Logger) *http.Server {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second, // slowloris; WebSockets set their own deadlines after the upgrade
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Protocols:         new(http.Protocols),
	}
	hs.Protocols.SetHTTP1(true)
	if certs != nil {
		hs.Protocols.SetHTTP2(true)
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.getCertificate}
	} else {
		hs.Protocols.SetUnencryptedHTTP2(true)
	}
	return hs
}
