package api

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/dynconn/dynconn/internal/dynamics/simulator"
)

// The browser tests drive the modal in headless Chromium against a real
// server, real PostgreSQL and the simulator, as a customer would use it.
// Each saves a screenshot under test-artifacts/ (git-ignored).

// chromium finds Chromium once per test binary; scripts/chromium.sh installs
// Debian's package when it is missing. Without it the tests fail, never skip.
var chromium = sync.OnceValues(func() (string, error) {
	cmd := exec.Command("bash", filepath.Join("..", "..", "scripts", "chromium.sh"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/chromium.sh: %w\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
})

// browser is one tab of a fresh headless Chromium.
type browser struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	// problems are what the page reported as going wrong: uncaught
	// exceptions, console errors, CSP violations. Any of them fails the test.
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := chromium()
	if err != nil {
		t.Fatalf("the browser tests need Chromium: %v", err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), // /dev/shm is small in containers
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	b := &browser{t: t}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			// A 4xx answer is logged by the network as an error; the modal
			// expects those, so only the page's own errors count.
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				b.mu.Unlock()
			}
		}
	}()
	// A safety net so a page that never shows what a test waits for fails
	// the test instead of hanging it; no assertion depends on it.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel)
	b.ctx = ctx
	return b
}

// do runs actions in the tab, failing the test on the first error with a
// screenshot of what the page showed then.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.screenshot()
		b.t.Fatal(err)
	}
}

// screenshot saves the whole page as test-artifacts/<test name>.png.
func (b *browser) screenshot() {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot: %v", err)
		return
	}
	dir := filepath.Join("..", "..", "test-artifacts")
	name := filepath.Join(dir, regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(b.t.Name(), "_")+".png")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(name, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", name)
}

// open loads the demo page as account, with the token in the fragment as
// make run's link gives it, and waits until the page has listed the
// account's connections.
func (b *browser) open(e *testEnv, account string) {
	b.t.Helper()
	b.do(
		chromedp.Navigate(e.srv.URL+"/modal/#token="+token(b.t, account)),
		chromedp.WaitVisible(shadow("#instance_url")),
		chromedp.Poll[chromedp.Void](`/connection/.test(document.getElementById("list-status").textContent)`),
	)
	if hash, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.hash`)); err != nil || hash != "" {
		b.t.Errorf("location.hash = %q, %v after load: the token should leave the address bar", hash, err)
	}
}

// shadow selects an element inside <dynconn-connect>'s shadow root.
func shadow(css string) chromedp.JSPath {
	return chromedp.JSPath(fmt.Sprintf(`document.querySelector("dynconn-connect").shadowRoot.querySelector(%q)`, css))
}

// fieldState is what a person (or a screen reader) gets from one field.
type fieldState struct {
	Label       string `json:"label"`
	Error       string `json:"error"` // "" when no message is shown
	DescribedBy string `json:"describedBy"`
	Invalid     string `json:"invalid"`
}

// formState is the component's state, by field name.
type formState struct {
	Fields  map[string]fieldState `json:"fields"`
	Focused string                `json:"focused"`
	Status  string                `json:"status"`
}

func (b *browser) form() formState {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[formState](`(() => {
		const root = document.querySelector("dynconn-connect").shadowRoot;
		const fields = {};
		for (const input of root.querySelectorAll("input")) {
			const error = root.getElementById(input.id + "-error");
			fields[input.id] = {
				label: root.querySelector('label[for="' + input.id + '"]')?.textContent ?? "",
				error: error.hidden ? "" : error.textContent,
				describedBy: input.getAttribute("aria-describedby") ?? "",
				invalid: input.getAttribute("aria-invalid") ?? "",
			};
		}
		return {fields, focused: root.activeElement?.id ?? "", status: root.querySelector(".status").textContent};
	})()`))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// finish saves a screenshot and fails the test if the page reported errors.
func (b *browser) finish() {
	b.t.Helper()
	b.screenshot()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Errorf("the page reported errors:\n%s", strings.Join(b.problems, "\n"))
	}
}

// TestModalShowsFieldErrors is a customer's first try: the whole address bar
// without https://, the app's name instead of its Client Id, and the secret's
// ID instead of its Value. The URL is forgiven; the other two are explained
// under their fields, and nothing is saved.
func TestModalShowsFieldErrors(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t)
	b.open(e, "acct-browser")
	b.do(
		chromedp.SendKeys(shadow("#instance_url"), "contoso.crm.dynamics.com/main.aspx?appid=0f3c1a2b&pagetype=dashboard"),
		chromedp.SendKeys(shadow("#client_id"), "Contoso Sync App"),
		chromedp.SendKeys(shadow("#client_secret"), simulator.SecretID),
		chromedp.Click(shadow(`button[type="submit"]`)),
		chromedp.WaitVisible(shadow("#client_id-error")),
	)
	got := b.form()
	if f := got.Fields["instance_url"]; f.Error != "" || f.Invalid != "false" {
		t.Errorf("Resource URL shows %q (aria-invalid %s); a path and a missing https:// are forgiven", f.Error, f.Invalid)
	}
	for name, want := range map[string]string{
		"client_id":     "The Client ID is a GUID",
		"client_secret": "This looks like the Secret ID",
	} {
		f := got.Fields[name]
		if !strings.Contains(f.Error, want) {
			t.Errorf("%s (%s) shows %q, want %q", name, f.Label, f.Error, want)
		}
		if f.DescribedBy != name+"-error "+name+"-help" || f.Invalid != "true" {
			t.Errorf("%s: aria-describedby %q, aria-invalid %q: the message must be tied to the input", name, f.DescribedBy, f.Invalid)
		}
	}
	if got.Focused != "client_id" {
		t.Errorf("focus is on %q, want the first field with a message, client_id", got.Focused)
	}
	if !strings.Contains(got.Status, "2 fields need attention") {
		t.Errorf("status = %q", got.Status)
	}
	if items := e.do("GET", "/connections", "acct-browser", nil).json(t)["items"].([]any); len(items) != 0 {
		t.Errorf("an invalid form created %d connections", len(items))
	}
	b.finish()
}

// recordEvents keeps the component's events in window.seen, in order, so a
// test can wait for the nth one.
const recordEvents = `(() => {
	window.seen = [];
	const form = document.querySelector("dynconn-connect");
	form.addEventListener("dynconn-tested", (e) => seen.push("tested " + (e.detail.ok ? "ok" : e.detail.error.code)));
	form.addEventListener("dynconn-saved", (e) => seen.push("saved " + e.detail.status));
	form.addEventListener("dynconn-loaded", (e) => seen.push("loaded " + e.detail.status));
})()`

// waitEvents waits until the component has sent n events and returns them.
func (b *browser) waitEvents(n int) []string {
	b.t.Helper()
	b.do(chromedp.Poll[chromedp.Void](fmt.Sprintf("window.seen.length >= %d", n)))
	seen, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`window.seen`))
	if err != nil {
		b.t.Fatal(err)
	}
	return seen
}

// checks returns the status of each check shown, in order.
func (b *browser) checks() []string {
	b.t.Helper()
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](
		`[...document.querySelector("dynconn-connect").shadowRoot.querySelectorAll("li[data-check]")].map((li) => li.dataset.check + " " + li.dataset.status)`))
	if err != nil {
		b.t.Fatal(err)
	}
	return got
}

// text returns the text of an element in the component, "" when it is absent.
func (b *browser) text(css string) string {
	b.t.Helper()
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](
		fmt.Sprintf(`document.querySelector("dynconn-connect").shadowRoot.querySelector(%q)?.textContent ?? ""`, css)))
	if err != nil {
		b.t.Fatal(err)
	}
	return got
}

// TestModalTestSaveAndEdit follows a customer from a working test to a
// saved connection, then edits it without retyping the secret, then with a
// wrong one.
func TestModalTestSaveAndEdit(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t)
	b.open(e, "acct-path")
	b.do(chromedp.Evaluate[chromedp.Void](recordEvents))
	passed := []string{"instance_url passed", "tenant_discovery passed", "token passed", "whoami passed", "security_role passed"}

	b.do(
		chromedp.SendKeys(shadow("#instance_url"), e.sim.InstanceURL("ok")),
		chromedp.SendKeys(shadow("#client_id"), simulator.ClientID),
		chromedp.SendKeys(shadow("#client_secret"), simulator.ClientSecret),
		chromedp.Click(shadow(".actions button[type=button]")),
	)
	if seen := b.waitEvents(1); seen[0] != "tested ok" {
		t.Fatalf("events %v, want a passed test", seen)
	}
	if diff := cmp.Diff(passed, b.checks()); diff != "" {
		t.Errorf("checks (-want +got):\n%s", diff)
	}
	if roles := b.text(".roles"); roles != "Security roles: API User" {
		t.Errorf("roles shown: %q", roles)
	}

	// A double click on Save still creates one connection.
	b.do(chromedp.Click(shadow(`button[type="submit"]`)), chromedp.Click(shadow(`button[type="submit"]`)))
	if seen := b.waitEvents(2); seen[1] != "saved untested" {
		t.Fatalf("events %v, want a save", seen)
	}
	b.do(chromedp.Poll[chromedp.Void](`document.querySelectorAll("#connections tr").length === 1`))
	if items := e.do("GET", "/connections", "acct-path", nil).json(t)["items"].([]any); len(items) != 1 {
		t.Fatalf("saving created %d connections, want 1", len(items))
	}

	// Later, edit it from the list: the secret stays unchanged and the test
	// uses the stored one.
	b.do(chromedp.Click(chromedp.ID("new")))
	if got := b.form(); got.Fields["instance_url"].Label != "Resource URL" || b.text("#heading") != "Connect Dynamics 365" {
		t.Errorf("New connection shows %q", b.text("#heading"))
	}
	b.do(chromedp.Click(chromedp.CSS("#connections button")))
	if seen := b.waitEvents(3); seen[2] != "loaded untested" {
		t.Fatalf("events %v, want the connection loaded", seen)
	}
	if got := b.form(); got.Fields["client_secret"].Error != "" || !strings.HasPrefix(b.text("#client_secret-help"), "Unchanged") {
		t.Errorf("edit mode secret help = %q", b.text("#client_secret-help"))
	}
	b.do(chromedp.Click(shadow(".actions button[type=button]")))
	if seen := b.waitEvents(4); seen[3] != "tested ok" {
		t.Fatalf("events %v, want the stored secret to pass", seen)
	}
	if diff := cmp.Diff(passed, b.checks()); diff != "" {
		t.Errorf("checks with the secret unchanged (-want +got):\n%s", diff)
	}

	// A wrong secret points at the guide's step for it.
	b.do(
		chromedp.SendKeys(shadow("#client_secret"), "Wrong8Q~this.is-not-the-secret-value_0123"),
		chromedp.Click(shadow(".actions button[type=button]")),
	)
	if seen := b.waitEvents(5); seen[4] != "tested client_secret_invalid" {
		t.Fatalf("events %v, want client_secret_invalid", seen)
	}
	if hint := b.text(".summary .hint"); !strings.Contains(hint, "Value") {
		t.Errorf("hint = %q", hint)
	}
	href, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("dynconn-connect").shadowRoot.querySelector(".summary .step a").href`))
	if err != nil || !strings.HasSuffix(href, "/modal/guide.html#client_secret") {
		t.Errorf("setup step link = %q, %v", href, err)
	}
	b.finish()
}

// TestModalStreamsChecks: the checks tick one after another as the server
// streams them. The simulator holds the token request for a second, and the
// page must show the first two checks passed while the token check still
// runs: a page that drew the result only at the end never shows that.
func TestModalStreamsChecks(t *testing.T) {
	e := newEnv(t, func(o *envConfig) { o.sim.SlowDelay = time.Second })
	b := newBrowser(t)
	b.open(e, "acct-stream")
	b.do(chromedp.Evaluate[chromedp.Void](recordEvents))
	b.do(
		chromedp.SendKeys(shadow("#instance_url"), e.sim.InstanceURL("slow")),
		chromedp.SendKeys(shadow("#client_id"), simulator.ClientID),
		chromedp.SendKeys(shadow("#client_secret"), simulator.ClientSecret),
		chromedp.Click(shadow(".actions button[type=button]")),
		chromedp.Poll[chromedp.Void](`(() => {
			const root = document.querySelector("dynconn-connect").shadowRoot;
			const status = (name) => root.querySelector('li[data-check="' + name + '"]')?.dataset.status;
			return status("tenant_discovery") === "passed" && status("token") === "running";
		})()`),
	)
	if seen := b.waitEvents(1); seen[0] != "tested ok" {
		t.Fatalf("events %v, want a passed test", seen)
	}
	passed := []string{"instance_url passed", "tenant_discovery passed", "token passed", "whoami passed", "security_role passed"}
	if diff := cmp.Diff(passed, b.checks()); diff != "" {
		t.Errorf("checks (-want +got):\n%s", diff)
	}
	b.finish()
}

// TestModalKeyboardAndLabels checks what a keyboard or screen reader user
// needs: every input labelled, help tied to it, live regions for what
// changes, and Tab reaching every control of the form in order.
func TestModalKeyboardAndLabels(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t)
	b.open(e, "acct-keys")
	for name, f := range b.form().Fields {
		if f.Label == "" || f.DescribedBy != name+"-help" || f.Invalid != "false" {
			t.Errorf("%s: label %q, aria-describedby %q, aria-invalid %q", name, f.Label, f.DescribedBy, f.Invalid)
		}
	}
	live, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](
		`[...document.querySelector("dynconn-connect").shadowRoot.querySelectorAll("[aria-live]")].map((e) => e.className + " " + e.getAttribute("aria-live"))`))
	if diff := cmp.Diff([]string{"result polite", "status polite"}, live); err != nil || diff != "" {
		t.Errorf("live regions (-want +got):\n%s %v", diff, err)
	}

	// Tab from the page's token field through the whole form.
	controls, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[...document.querySelector("dynconn-connect").shadowRoot
		.querySelectorAll("input, button, a[href]")].map((e) => e.id || e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.Focus(chromedp.ID("token")))
	var reached []string
	// A date input takes one Tab per part (month, day, year): count a
	// control once however many presses it takes, until the last one.
	for range 3 * len(controls) {
		b.do(chromedp.KeyEvent("\t"))
		id, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(() => {
			const root = document.activeElement?.shadowRoot;
			const e = root ? root.activeElement : null;
			return e ? (e.id || e.textContent) : "outside: " + document.activeElement?.id;
		})()`))
		if err != nil {
			t.Fatal(err)
		}
		if len(reached) == 0 || reached[len(reached)-1] != id {
			reached = append(reached, id)
		}
		if id == controls[len(controls)-1] {
			break
		}
	}
	if diff := cmp.Diff(controls, reached); diff != "" {
		t.Errorf("Tab order (-controls in document order +reached):\n%s", diff)
	}
	b.finish()
}

// TestChromiumMissingFails keeps the promise that a missing browser fails
// the tests rather than skipping them: with no Chromium on PATH and no way
// to install one, scripts/chromium.sh exits non-zero.
func TestChromiumMissingFails(t *testing.T) {
	cmd := exec.Command("bash", filepath.Join("..", "..", "scripts", "chromium.sh"))
	cmd.Env = []string{"PATH=" + t.TempDir(), "CHROMIUM=", "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "Chromium not found") {
		t.Errorf("chromium.sh without Chromium or apt-get: %v\n%s", err, out)
	}
}
