package natsembed

import (
	"errors"
	"testing"
	"time"
)

// TestSyncOptions: SyncAlways and SyncInterval reach nats-server's options;
// a negative interval is a config error.
func TestSyncOptions(t *testing.T) {
	opts, err := Config{StoreDir: t.TempDir(), SyncAlways: true}.options()
	if err != nil || !opts.SyncAlways {
		t.Fatalf("SyncAlways: %v, %v", opts != nil && opts.SyncAlways, err)
	}
	opts, err = Config{StoreDir: t.TempDir(), SyncInterval: time.Second}.options()
	if err != nil || opts.SyncAlways || opts.SyncInterval != time.Second {
		t.Fatalf("SyncInterval: %+v, %v", opts, err)
	}
	if _, err := (Config{StoreDir: t.TempDir(), SyncInterval: -time.Second}).options(); !errors.Is(err, ErrConfig) {
		t.Fatalf("negative interval: %v", err)
	}
}
