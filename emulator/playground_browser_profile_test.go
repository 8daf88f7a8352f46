package emulator_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "image/jpeg"

	"github.com/chromedp/chromedp"
)

// TestPlaygroundProfileInBrowser drives the playground's avatar, nickname
// and web-view sections in headless Chromium against the demo's
// example.Caddyfile: upload a PNG through the chooseAvatar stand-in and see
// the image the site serves load in the page, save a nickname and read it
// back in the profile, and open a page of the site as the web-view (a
// ticket, then the site's cookies).
func TestPlaygroundProfileInBrowser(t *testing.T) {
	p := newBrowserPage(t)
	emuURL, siteURL := startDemo(t)
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		p.step("profile-failed.png", what, actions...)
	}

	// The image the user "chooses": a small PNG, 48×32, two colours.
	pic := filepath.Join(t.TempDir(), "me.png")
	writeTestPNG(t, pic, 48, 32)

	step("opening the playground and logging in",
		chromedp.Navigate(emuURL+"/emulator/playground"),
		chromedp.WaitVisible("#avatar-upload"),
		setInput("#site", siteURL+"/"),
		setInput("#openid", "o_browser_avatar"),
		click("#login"), waitText("#status", "Logged in as user "), waitIdle("#login"),
	)

	// Uploading without a file says so, and sends nothing.
	step("uploading without a file", click("#avatar-upload"), waitText("#result", "no_file"), waitIdle("#avatar-upload"))

	// A file that is not an image: the site's refusal reaches the page
	// (a 400 across origins, so it needs the CORS headers too), and no
	// image is shown.
	notImage := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notImage, []byte("not an image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	step("uploading a file that is not an image",
		chromedp.SetUploadFiles("#avatar-file", []string{notImage}),
		click("#avatar-upload"), waitText("#result", "Upload avatar failed: "), waitIdle("#avatar-upload"),
	)
	for _, want := range []string{`"status": 400`, `"error": "invalid_request"`, "not a PNG, JPEG, WebP or GIF image"} {
		if res := p.text("#result"); !strings.Contains(res, want) {
			t.Errorf("the refused upload's result lacks %q:\n%s", want, res)
		}
	}
	if eval[bool](p, `!document.querySelector('#avatar-figure').hidden`) {
		t.Errorf("an image is shown after a refused upload")
	}

	// The avatar: chosen, uploaded with uploadAvatar (wx.uploadFile), shown
	// as the site serves it.
	step("uploading the avatar",
		chromedp.SetUploadFiles("#avatar-file", []string{pic}),
		click("#avatar-upload"), waitText("#result", "Upload avatar: "), waitIdle("#avatar-upload"),
		chromedp.WaitVisible("#avatar-img"),
		poll(`(() => { const i = document.querySelector('#avatar-img'); return i.complete && i.naturalWidth > 0; })()`, 15*time.Second),
	)
	res := p.text("#result")
	if !strings.Contains(res, `"status": "success"`) {
		t.Fatalf("upload result: %s", res)
	}
	src := eval[string](p, `document.querySelector('#avatar-img').src`)
	avatarURL := regexp.MustCompile(`^` + regexp.QuoteMeta(siteURL) + `/wx/avatar/[0-9a-f]{16,}\.(png|jpg|webp|gif)$`)
	if !avatarURL.MatchString(src) {
		t.Fatalf("the avatar image's src %q is not an avatar URL of the site %s", src, siteURL)
	}
	if path := strings.TrimPrefix(src, siteURL); !strings.Contains(res, `"avatar_url": "`+path+`"`) {
		t.Errorf("the upload result does not name %s as the avatar_url:\n%s", path, res)
	}
	if caption := p.text("#avatar-caption"); caption != src {
		t.Errorf("caption %q, want the image URL %q", caption, src)
	}
	// The page shows the image the site serves: the same size as the one
	// Go decodes from the URL.
	served := fetchImage(t, src)
	nw := eval[int](p, `document.querySelector('#avatar-img').naturalWidth`)
	nh := eval[int](p, `document.querySelector('#avatar-img').naturalHeight`)
	if nw != served.Dx() || nh != served.Dy() {
		t.Errorf("the page's image is %d×%d, the site serves %d×%d", nw, nh, served.Dx(), served.Dy())
	}
	if log := p.text("#log"); !strings.Contains(log, "POST "+siteURL+"/wx/avatar → 200") {
		t.Errorf("the request log has no upload:\n%s", log)
	}

	// The nickname, saved with updateProfile and read back with profile().
	const nickname = "小明的猫 🐱"
	step("saving the nickname",
		setInput("#nickname", nickname),
		click("#nickname-save"), waitText("#result", "Save nickname: "), waitIdle("#nickname-save"),
		waitText("#result", `"nickname": "`+nickname+`"`),
	)
	step("reading the profile",
		click("#profile"), waitText("#result", "Get profile: "), waitIdle("#profile"),
		waitText("#result", `"nickname": "`+nickname+`"`),
	)
	if res := p.text("#result"); !strings.Contains(res, `"avatar_url": "`+strings.TrimPrefix(src, siteURL)+`"`) {
		t.Errorf("the profile lost the avatar:\n%s", res)
	}
	if got := eval[string](p, `document.querySelector('#avatar-img').src`); got != src {
		t.Errorf("after the profile the image is %s, want %s", got, src)
	}
	p.screenshot("playground-avatar.png")

	// The web-view button: the demo site has a web block, so the page gets
	// a ticket and sends the tab it opened at the click to the enter link,
	// which sets the site's cookies and goes on to /hello as the user.
	step("opening a page of the site as the web-view",
		setInput("#webview-path", "/hello"),
		click("#webview-open"), waitText("#result", "Open as web-view: "), waitIdle("#webview-open"),
	)
	if res := p.text("#result"); !strings.Contains(res, "in a new tab") || regexp.MustCompile(`ticket=[A-Za-z0-9_-]{20,}`).MatchString(res) {
		t.Errorf("web-view result (the ticket must be shown shortened): %s", res)
	}
	body := webViewTab(t, p, siteURL+"/hello")
	if !strings.Contains(body, `"hello":"user `) || !strings.Contains(body, `"openid":"o_browser_avatar"`) {
		t.Errorf("the web-view page does not show the user: %s", body)
	}
	p.screenshot("playground-webview.png")

	p.checkConsole(400, 401, 403)
}

// writeTestPNG writes a w×h PNG of two colours to path.
func writeTestPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{R: 0x07, G: 0xc1, B: 0x60, A: 0xff}
			if (x/8+y/8)%2 == 1 {
				c = color.RGBA{R: 0xff, G: 0xff, B: 0xff, A: 0xff}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fetchImage GETs url and decodes it as an image.
func fetchImage(t *testing.T, url string) image.Rectangle {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("fetching the avatar: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("fetching the avatar: HTTP %d", resp.StatusCode)
	}
	cfg, _, err := image.DecodeConfig(resp.Body)
	if err != nil {
		t.Fatalf("decoding the avatar the site serves: %v", err)
	}
	return image.Rect(0, 0, cfg.Width, cfg.Height)
}

// waitPageTabs waits up to 5 s until want page tabs are open, and returns
// how many are.
func waitPageTabs(t *testing.T, p *browserPage, want int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		infos, err := chromedp.Targets(p.ctx)
		if err != nil {
			t.Fatalf("listing tabs: %v", err)
		}
		n := 0
		for _, i := range infos {
			if i.Type == "page" {
				n++
			}
		}
		if n == want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond) // waiting for the browser to close a tab, not for logic
	}
}

// webViewTab waits up to 15 s for a second page tab to reach want (the
// page a web-view ticket leads to) and returns its text.
func webViewTab(t *testing.T, p *browserPage, want string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		infos, err := chromedp.Targets(p.ctx)
		if err != nil {
			t.Fatalf("listing tabs: %v", err)
		}
		for _, i := range infos {
			if i.Type != "page" || i.URL != want {
				continue
			}
			tctx, cancel := chromedp.NewContext(p.ctx, chromedp.WithTargetID(i.TargetID))
			defer cancel()
			ectx, cancel2 := context.WithTimeout(tctx, 5*time.Second)
			defer cancel2()
			body, err := chromedp.Run(ectx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			if err == nil && body != "" {
				return body
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tab reached %s; tabs: %v", want, infos)
		}
		time.Sleep(50 * time.Millisecond) // waiting for the browser to load the tab, not for logic
	}
}
