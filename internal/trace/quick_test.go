package trace

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTraces(t *testing.T) {
	dir := os.Getenv("COLLABD_TRACES")
	if dir == "" {
		dir = "../../../shared/traces"
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json.gz"))
	for _, f := range files {
		tr, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(tr)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(res.Line())
	}
}
