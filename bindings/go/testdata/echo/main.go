// A Flame service in Go (used by the tests): counts the tasks of its
// session; input "fail" fails the task.
package main

import (
	"errors"
	"fmt"
	"os"

	flame "github.com/flame-in-c/flame/bindings/go"
)

type counter struct{ n int }

func (c *counter) OnSessionEnter(ctx flame.SessionContext) error {
	c.n = 0
	return nil
}

func (c *counter) OnTaskInvoke(ctx flame.TaskContext) ([]byte, error) {
	if string(ctx.Input) == "fail" {
		return nil, errors.New("asked to fail")
	}
	c.n++
	return []byte(fmt.Sprintf("%s #%d", ctx.Input, c.n)), nil
}

func (c *counter) OnSessionLeave() {}

func main() {
	if err := flame.Serve(&counter{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
