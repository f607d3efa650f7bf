package main

import (
	"io"
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	for _, path := range []string{"/", "/hello", "/a/b"} {
		rec := httptest.NewRecorder()
		handler("web-7f9c4").ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		body, _ := io.ReadAll(rec.Body)
		if want := "web-7f9c4 " + path + "\n"; string(body) != want || rec.Code != 200 {
			t.Errorf("GET %s = %d %q, want 200 %q", path, rec.Code, body, want)
		}
	}
}
