// Package testclock is the injectable clock of the tests: it stands still
// until a test moves it, so time-dependent logic is tested without sleeps.
package testclock

import (
	"sync/atomic"
	"time"
)

// Clock is a settable clock, safe for concurrent use. Pass its Now method
// wherever code takes a func() time.Time.
type Clock struct{ ns atomic.Int64 }

// New returns a clock standing at t.
func New(t time.Time) *Clock {
	c := &Clock{}
	c.Set(t)
	return c
}

// Now returns the clock's time, in UTC.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock forward by d (backward for a negative d).
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }
