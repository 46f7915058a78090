package main

import (
	"fmt"

	"github.com/drawbridge/drawbridge/internal/client"
)

// applyDiscovered is the end of every `inventory sync CLOUD`: with print it
// writes the discovered document, else it sends it to the server (send:
// apply, or apply and prune) and says what was read (summary of the
// server's counts).
func (a *app) applyDiscovered(doc []byte, print bool, send func(*client.Client) (map[string]int, error), summary func(counts map[string]int) string) error {
	if print {
		_, err := a.stdout.Write(append(doc, '\n'))
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	counts, err := send(c)
	if err != nil {
		return err
	}
	if a.json() {
		return a.printData(counts)
	}
	_, err = fmt.Fprintln(a.stdout, summary(counts))
	return err
}
