package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/internal/natsembed"
)

// natsSecurity is how collabd authenticates to NATS and secures it
// (docs/CLUSTER.md, "Securing NATS"): credentials and TLS for --nats,
// and for --nats-embedded the TLS of the node's client and route ports,
// the route secret and the client port's credentials. Secrets are never
// logged nor echoed in errors.
type natsSecurity struct {
	creds         string // --nats-creds: a NATS credentials file (JWT and nkey seed)
	user          string // --nats-user
	password      string // --nats-password
	token         string // --nats-token
	tlsCA         string // --nats-tls-ca: PEM CA bundle
	tlsCert       string // --nats-tls-cert: PEM certificate
	tlsKey        string // --nats-tls-key: PEM key
	clusterSecret string // --nats-cluster-secret
}

// minClusterSecret is the shortest --nats-cluster-secret accepted.
const minClusterSecret = 16

func (f *natsSecurity) register(fs *flag.FlagSet) {
	fs.StringVar(&f.creds, "nats-creds", "", "NATS credentials `file` (user JWT and nkey seed) for --nats")
	fs.StringVar(&f.user, "nats-user", "", "NATS user name (with --nats-password): for --nats, or required by the embedded node's client port")
	fs.StringVar(&f.password, "nats-password", "", "NATS password (prefer COLLABD_NATS_PASSWORD: flags show in ps)")
	fs.StringVar(&f.token, "nats-token", "", "NATS token: for --nats, or required by the embedded node's client port (prefer COLLABD_NATS_TOKEN)")
	fs.StringVar(&f.tlsCA, "nats-tls-ca", "", "CA `file` (PEM) that NATS servers' certificates, and the embedded node's route peers', must chain to")
	fs.StringVar(&f.tlsCert, "nats-tls-cert", "", "certificate `file` (PEM): the client certificate for --nats; for --nats-embedded, the node's certificate on its client and route ports")
	fs.StringVar(&f.tlsKey, "nats-tls-key", "", "private key `file` (PEM) of --nats-tls-cert")
	fs.StringVar(&f.clusterSecret, "nats-cluster-secret", "", "--nats-embedded: the secret every route connection must present (the same on every node, 16 bytes or more; prefer COLLABD_NATS_CLUSTER_SECRET)")
}

// any reports whether a security flag is set.
func (f natsSecurity) any() bool { return f != natsSecurity{} }

// check validates the flags against the mode (embedded or external).
func (f natsSecurity) check(c clusterFlags) error {
	switch {
	case !c.on() && f.any():
		return errors.New("the --nats-* security flags need --nats or --nats-embedded")
	case (f.user == "") != (f.password == ""):
		return errors.New("--nats-user and --nats-password go together")
	case f.token != "" && f.user != "":
		return errors.New("--nats-token excludes --nats-user/--nats-password")
	case f.creds != "" && (f.token != "" || f.user != ""):
		return errors.New("--nats-creds excludes --nats-token and --nats-user/--nats-password")
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return errors.New("--nats-tls-cert and --nats-tls-key go together")
	case c.embedded && f.creds != "":
		return errors.New("--nats-creds is for --nats (the embedded node has no JWT accounts: use --nats-token or --nats-user/--nats-password)")
	case !c.embedded && f.clusterSecret != "":
		return errors.New("--nats-cluster-secret is for --nats-embedded")
	case f.clusterSecret != "" && c.clusterListen == "":
		return errors.New("--nats-cluster-secret needs --nats-cluster-listen")
	case f.clusterSecret != "" && len(f.clusterSecret) < minClusterSecret:
		return fmt.Errorf("--nats-cluster-secret: %d bytes or more", minClusterSecret)
	case c.embedded && f.tlsCert != "" && f.tlsCA == "":
		return errors.New("--nats-embedded with --nats-tls-cert needs --nats-tls-ca (the routes' peers are verified against it)")
	case c.embedded && c.clusterListen != "" && !loopback(c.clusterListen) && f.clusterSecret == "" && f.tlsCert == "":
		return fmt.Errorf("--nats-cluster-listen %s is not loopback: set --nats-cluster-secret and/or --nats-tls-cert/--nats-tls-key/--nats-tls-ca, or anyone who reaches the port joins the cluster and reads every document", c.clusterListen)
	}
	return nil
}

// clientOptions are the options of collabd's NATS connection for --nats.
func (f natsSecurity) clientOptions() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case f.creds != "":
		if _, err := os.Stat(f.creds); err != nil {
			return nil, fmt.Errorf("--nats-creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(f.creds))
	case f.user != "":
		opts = append(opts, nats.UserInfo(f.user, f.password))
	case f.token != "":
		opts = append(opts, nats.Token(f.token))
	}
	if f.tlsCA != "" || f.tlsCert != "" {
		cfg, err := f.tlsConfig(false)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(cfg))
	}
	return opts, nil
}

// tlsConfig loads the TLS files: RootCAs and ClientCAs from --nats-tls-ca,
// the certificate from --nats-tls-cert/key; mutual requires peers'
// certificates (the embedded node's route port).
func (f natsSecurity) tlsConfig(mutual bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.tlsCA != "" {
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--nats-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--nats-tls-ca %s: no PEM certificate in it", f.tlsCA)
		}
		cfg.RootCAs, cfg.ClientCAs = pool, pool
	}
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--nats-tls-cert/--nats-tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if mutual {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	} else if cfg.ClientCAs != nil {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// embedded sets the embedded node's security (cfg) and returns the options
// of this process's own connection to it. The client port always asks
// for credentials: --nats-token or --nats-user/--nats-password, else a
// random token only this process knows. With TLS, the process connects
// in-process (no TLS to itself; its certificate need not name 127.0.0.1).
func (f natsSecurity) embedded(cfg *natsembed.Config) (own []nats.Option, inProcess bool, err error) {
	switch {
	case f.user != "":
		cfg.User, cfg.Password = f.user, f.password
		own = append(own, nats.UserInfo(f.user, f.password))
	case f.token != "":
		cfg.Token = f.token
		own = append(own, nats.Token(f.token))
	default:
		var b [24]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
		cfg.Token = hex.EncodeToString(b[:])
		own = append(own, nats.Token(cfg.Token))
	}
	cfg.ClusterSecret = f.clusterSecret
	if f.tlsCert != "" {
		client, err := f.tlsConfig(false)
		if err != nil {
			return nil, false, err
		}
		cfg.TLS = client
		if cfg.ClusterListen != "" {
			if cfg.ClusterTLS, err = f.tlsConfig(true); err != nil {
				return nil, false, err
			}
		}
		// In-process: no TLS to itself (nats.Secure would make the client
		// verify the node's certificate against 127.0.0.1), and no
		// reconnects to the other nodes' client ports it learns of.
		own = append(own, nats.IgnoreDiscoveredServers())
		inProcess = true
	}
	return own, inProcess, nil
}
