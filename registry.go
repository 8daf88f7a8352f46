package wechatauth

import (
	"path"
	"reflect"
	"sort"
	"sync"

	"github.com/wxauth/caddy-wechat-auth/internal/handler"
	"github.com/wxauth/caddy-wechat-auth/store"
)

// liveApp is one provisioned wechat_auth handler as the admin API sees
// it: the live handler itself, never a copy of its state.
type liveApp struct {
	handler *handler.Handler
	// st is the app's store, for the operator's lookups.
	st store.Store
	// store names the backend: the last element of the store type's
	// package path ("bolt", "postgres").
	store string
	// backup is the store as a store.Backuper, nil when it cannot write
	// a snapshot of itself.
	backup store.Backuper
}

// appRegistry holds the live handlers of this process by app id. Each
// handler adds itself at Provision and removes itself at Cleanup; during a
// config reload the new handler is added before the old one is removed,
// so an app is never missing, and the newest handler answers for it.
type appRegistry struct {
	mu   sync.Mutex
	apps map[string][]*liveApp // oldest first
}

// liveApps is the process-wide registry the admin API reads.
var liveApps = &appRegistry{apps: make(map[string][]*liveApp)}

func newLiveApp(h *handler.Handler, st store.Store) *liveApp {
	b, _ := st.(store.Backuper)
	return &liveApp{handler: h, st: st, store: storeKind(st), backup: b}
}

// storeKind names a store by the package of its type.
func storeKind(st any) string {
	t := reflect.TypeOf(st)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.PkgPath() == "" {
		return "unknown"
	}
	return path.Base(t.PkgPath())
}

func (r *appRegistry) add(a *liveApp) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := a.handler.AppID()
	r.apps[id] = append(r.apps[id], a)
}

// remove drops a; removing what is not there does nothing.
func (r *appRegistry) remove(a *liveApp) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := a.handler.AppID()
	list := r.apps[id]
	for i, x := range list {
		if x == a {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.apps, id)
		return
	}
	r.apps[id] = list
}

// get returns the newest live handler of the app, or nil.
func (r *appRegistry) get(app string) *liveApp {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.apps[app]
	if len(list) == 0 {
		return nil
	}
	return list[len(list)-1]
}

// list returns the newest live handler of every app, by app id.
func (r *appRegistry) list() []*liveApp {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.apps))
	for id := range r.apps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]*liveApp, 0, len(ids))
	for _, id := range ids {
		list := r.apps[id]
		out = append(out, list[len(list)-1])
	}
	return out
}
