// A Flame application in Go with no Flame SDK: the stdio shim's frame mode,
// the same notes as examples/stdio-python/notes.py ("fail" fails a task,
// "crash" exits, "hang" never answers). Only the standard library:
//
//	go build -o /opt/flame/notes-go notes.go
//
// (tests/ecosystem/test_shims.py builds and runs it.)
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"
)

func send(w *bufio.Writer, kind byte, data []byte) {
	var h [5]byte
	h[0] = kind
	binary.BigEndian.PutUint32(h[1:], uint32(len(data)))
	w.Write(h[:])
	w.Write(data)
	w.Flush()
}

func main() {
	r, w := bufio.NewReader(os.Stdin), bufio.NewWriter(os.Stdout)
	var prefix []byte
	var notes [][]byte
	for {
		var h [5]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		data := make([]byte, binary.BigEndian.Uint32(h[1:]))
		if _, err := io.ReadFull(r, data); err != nil {
			return
		}
		switch h[0] {
		case 'E':
			prefix, notes = data, nil
			send(w, 'O', nil)
		case 'T':
			switch string(data) {
			case "fail":
				send(w, 'X', []byte("asked to fail"))
			case "crash":
				fmt.Fprintln(os.Stderr, "notes.go: asked to crash")
				os.Exit(3)
			case "hang":
				time.Sleep(1 << 62)
			default:
				notes = append(notes, data)
				send(w, 'O', append(append(append([]byte{}, prefix...), ": "...), bytes.Join(notes, []byte(" | "))...))
			}
		case 'L':
			return
		}
	}
}
