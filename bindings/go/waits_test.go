package flame

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A session no node can fit ends Invoke and Map with FailedPrecondition
// and the session's own event, within a bound, instead of waiting.
func TestSessionThatCannotRunRaises(t *testing.T) {
	c := connect(t)
	defer c.Close()
	s, err := c.CreateSession("", SessionSpec{Application: "flmping", Resreq: "cpu=64,mem=64m"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Free()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, err = s.Invoke(ctx, []byte("{}"))
	if !IsCode(err, FailedPrecondition) || !strings.Contains(err.Error(), "No node can run session") {
		t.Fatalf("Invoke: want FailedPrecondition naming event 1003, got %v", err)
	}
	_, err = s.Map(ctx, [][]byte{[]byte("{}"), []byte("{}")})
	if !IsCode(err, FailedPrecondition) || !strings.Contains(err.Error(), "cannot run") {
		t.Fatalf("Map: want FailedPrecondition, got %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
