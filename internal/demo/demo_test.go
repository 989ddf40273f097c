package demo_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/collabd/collabd/internal/demo"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(demo.Handler())
	defer srv.Close()
	tests := []struct {
		path, contains string
		status         int
	}{
		{"/", `src="/demo/app.js"`, http.StatusOK},
		{"/demo/app.js", `import("./rich.js")`, http.StatusOK}, // the entry loads one mode
		{"/demo/plain.js", `"/v1/ws"`, http.StatusOK},
		{"/demo/rich.js", `"/v1/hocuspocus"`, http.StatusOK},
		{"/demo/code.js", `"/v1/yjs"`, http.StatusOK},
		{"/demo/", "", http.StatusNotFound},
		{"/demo/missing.js", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("GET %s = %d, want %d", tt.path, resp.StatusCode, tt.status)
		}
		if !strings.Contains(string(body), tt.contains) {
			t.Errorf("GET %s: body lacks %q", tt.path, tt.contains)
		}
	}
}
