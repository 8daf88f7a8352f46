package handler

import "context"

// hookedFlights is the handler's loginFlights with a hook that runs each
// time a request joins a login in flight, before it waits for the answer:
// tests use it to know that duplicates have joined.
type hookedFlights struct {
	*loginFlights
	onJoin func()
}

func (h hookedFlights) do(ctx context.Context, code string, run func() loginAnswer) (loginAnswer, error) {
	f, leader := h.enter(code)
	if !leader {
		h.onJoin()
		return f.wait(ctx)
	}
	return h.lead(f, run), nil
}
