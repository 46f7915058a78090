package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's convention, which TestREADME enforces:
//
//   - Every ```sh and ```bash block runs, in order, in one bash with
//     set -euo pipefail, so a block may use what an earlier one exported.
//   - A block that cannot run here carries, on the line just before its
//     fence, <!-- readme-test: skip (REASON) --> with an honest reason
//     (a real cloud account, CI itself). The list is kept short.
//   - <!-- readme-test: in-checkout (REASON) --> runs a block in the
//     repository checkout instead of the scratch directory: the build, which
//     a user runs there too (from the scratch directory, whose entries link
//     to the checkout's, Go would find no package in its build cache).
//   - Other shell-looking fences (```console, ```shell, ```zsh) are refused,
//     so no command example escapes the test; ```go, ```yaml and bare ```
//     blocks are not commands and are not run.
//   - A block that starts a long-lived process backgrounds it itself, as a
//     user would in one terminal (`drawbridge server … &`), and ends it with
//     `kill $PID`; whatever is still running at the end is killed.
//
// The script runs in a temporary directory whose top-level entries link to
// the repository's (so paths like internal/inventory/testdata/… resolve),
// with a temporary HOME and the freshly built binary on PATH as drawbridge;
// as root it runs in a network namespace of its own, so the servers' fixed
// loopback ports and the agent's nftables table touch nothing outside.

// readmeBlock is one fenced shell block of README.md.
type readmeBlock struct {
	line int // line of the first command (after the fence)
	text string
	skip string // the reason, if marked skip
	// inCheckout: run in the repository checkout rather than the scratch
	// directory (the build, so that it hits the build cache: the cache
	// keys packages by directory).
	inCheckout bool
}

var readmeMarker = regexp.MustCompile(`^<!-- readme-test: (skip|in-checkout) \((.+)\) -->$`)

// readmeBlocks extracts the shell blocks of a README in order.
func readmeBlocks(doc string) ([]readmeBlock, error) {
	var blocks []readmeBlock
	lines := strings.Split(doc, "\n")
	for i := 0; i < len(lines); i++ {
		fence, ok := strings.CutPrefix(lines[i], "```")
		if !ok {
			if strings.HasPrefix(lines[i], "<!-- readme-test") && !readmeMarker.MatchString(lines[i]) {
				return nil, fmt.Errorf("README.md:%d: unknown marker %q (want <!-- readme-test: skip (REASON) --> or in-checkout (REASON))", i+1, lines[i])
			}
			continue
		}
		lang := strings.TrimSpace(fence)
		end := i + 1
		for end < len(lines) && !strings.HasPrefix(lines[end], "```") {
			end++
		}
		if end == len(lines) {
			return nil, fmt.Errorf("README.md:%d: unterminated code block", i+1)
		}
		switch lang {
		case "sh", "bash":
			b := readmeBlock{line: i + 2, text: strings.Join(lines[i+1:end], "\n") + "\n"}
			if i > 0 {
				if m := readmeMarker.FindStringSubmatch(lines[i-1]); m != nil && m[1] == "skip" {
					b.skip = m[2]
				} else if m != nil {
					b.inCheckout = true
				}
			}
			blocks = append(blocks, b)
		case "console", "shell", "zsh", "shell-session", "text/x-sh":
			return nil, fmt.Errorf("README.md:%d: a ```%s block is not run by TestREADME; write commands as ```sh", i+1, lang)
		}
		i = end
	}
	return blocks, nil
}

// TestREADMEBlocksParse checks the extraction on a small document.
func TestREADMEBlocksParse(t *testing.T) {
	doc := "# t\n```sh\necho a\n```\n<!-- readme-test: skip (needs a cloud) -->\n```bash\naz x\n```\n```go\nx := 1\n```\n"
	bs, err := readmeBlocks(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].line != 3 || bs[0].text != "echo a\n" || bs[0].skip != "" || bs[1].skip != "needs a cloud" || bs[0].inCheckout {
		t.Fatalf("blocks = %+v", bs)
	}
	for _, bad := range []string{"```console\n$ x\n```\n", "<!-- readme-test: skip -->\n```sh\nx\n```\n", "```sh\nx\n"} {
		if _, err := readmeBlocks(bad); err == nil {
			t.Errorf("readmeBlocks(%q): no error", bad)
		}
	}
}

// maxREADMESkips keeps the list of blocks the test does not run short.
const maxREADMESkips = 6

// TestREADME runs every shell block of README.md in order, as a new user
// following it on a fresh machine would; it fails naming the README line of
// the command that failed, with the output of its block.
func TestREADME(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root for a network namespace of its own (the README's servers listen on fixed loopback ports, and its agent changes nftables)")
	}
	if out, err := exec.Command("unshare", "--net", "true").CombinedOutput(); err != nil {
		t.Skipf("skipped: cannot make a network namespace (unshare --net: %v %s)", err, bytes.TrimSpace(out))
	}
	// The agent's block needs nf_tables (the agent programs it through
	// netlink; nft only shows the result).
	if out, err := exec.Command("unshare", "--net", "nft", "add", "table", "inet", "probe").CombinedOutput(); err != nil {
		t.Skipf("skipped: the kernel or this machine lacks nf_tables, which the README's agent needs (nft: %v %s)", err, bytes.TrimSpace(out))
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	// The README's first block builds the binary into ~/go/bin.
	home, work := filepath.Join(tmp, "home"), filepath.Join(tmp, "work")
	binDir := filepath.Join(home, "go", "bin")
	for _, d := range []string{home, work, binDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	linkRepo(t, repo, work)

	script, skipped := readmeScript(t, blocks, tmp, repo)
	if skipped > maxREADMESkips {
		t.Errorf("%d README blocks are marked skip; keep it to %d", skipped, maxREADMESkips)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	outPath := filepath.Join(tmp, "output")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// unshare -n: a fresh network namespace with only loopback, which the
	// script's prelude brings up.
	cmd := exec.CommandContext(ctx, "unshare", "--net", "bash", script)
	cmd.Dir = work
	cmd.Env = readmeEnv(home, binDir)
	cmd.Stdout, cmd.Stderr = out, out // a file: background servers may outlive bash
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	runErr := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything a block left running
	}
	t.Logf("README blocks ran in %s (%d run, %d skipped)", time.Since(start).Round(time.Millisecond), len(blocks)-skipped, skipped)
	text, _ := os.ReadFile(outPath)
	logSlowBlocks(t, string(text))
	if runErr != nil {
		if ctx.Err() != nil {
			runErr = fmt.Errorf("%w (timed out)", runErr)
		}
		line, blockOut := failedBlock(string(text))
		t.Fatalf("README.md:%s: %v\noutput of its block:\n%s\nerrors logged by any block's servers:\n%s", line, runErr, blockOut, loggedErrors(string(text)))
	}
}

// readmeScript writes the blocks as one script; each block is a file of
// its own, sourced, so an ERR trap can name the README line that failed.
func readmeScript(t *testing.T, blocks []readmeBlock, dir, repo string) (path string, skipped int) {
	t.Helper()
	var s strings.Builder
	s.WriteString(`set -euo pipefail
ip link set lo up
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
`)
	for i, b := range blocks {
		if b.skip != "" {
			skipped++
			t.Logf("README.md:%d: not run: %s", b.line-1, b.skip)
			continue
		}
		f := filepath.Join(dir, "block-"+strconv.Itoa(i)+".sh")
		if err := os.WriteFile(f, []byte(b.text), 0o644); err != nil {
			t.Fatal(err)
		}
		// The ERR trap is inherited by the sourced file (set -E); LINENO
		// there counts lines of the block.
		fmt.Fprintf(&s, "echo \"@@readme-block %d $(date +%%s.%%N)\"\n", b.line)
		fmt.Fprintf(&s, "trap 'echo \"@@readme-failed $((%d + LINENO - 1))\"' ERR\n", b.line)
		if b.inCheckout {
			fmt.Fprintf(&s, "pushd %q >/dev/null\n", repo)
		}
		fmt.Fprintf(&s, "set -E\nsource %q\nset +E\ntrap - ERR\n", f)
		if b.inCheckout {
			s.WriteString("popd >/dev/null\n")
		}
	}
	path = filepath.Join(dir, "readme.sh")
	if err := os.WriteFile(path, []byte(s.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, skipped
}

// readmeEnv is a fresh user's environment: a temporary HOME with
// ~/go/bin on PATH, the Go caches of the tester (so nothing is downloaded), and no
// DRAWBRIDGE_* variables.
func readmeEnv(home, binDir string) []string {
	env := []string{"HOME=" + home, "PATH=" + binDir + ":" + os.Getenv("PATH"), "LANG=C.UTF-8", "TERM=dumb"}
	// The build stamps the checkout's git revision; keep the tester's git
	// settings (e.g. safe.directory for a checkout owned by another user).
	if h, err := os.UserHomeDir(); err == nil && os.Getenv("GIT_CONFIG_GLOBAL") == "" {
		if _, err := os.Stat(filepath.Join(h, ".gitconfig")); err == nil {
			env = append(env, "GIT_CONFIG_GLOBAL="+filepath.Join(h, ".gitconfig"))
		}
	} else if v := os.Getenv("GIT_CONFIG_GLOBAL"); v != "" {
		env = append(env, "GIT_CONFIG_GLOBAL="+v)
	}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOTOOLCHAIN", "GOFLAGS", "GOPROXY", "TZ"} {
		if v := goEnv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func goEnv(k string) string {
	if v := os.Getenv(k); v != "" || k == "TZ" {
		return v
	}
	out, err := exec.Command("go", "env", k).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// linkRepo links each top-level entry of the repository (but .git) into
// dir, so the README's relative paths resolve while what its blocks write
// stays in dir.
func linkRepo(t *testing.T, repo, dir string) {
	t.Helper()
	entries, err := os.ReadDir(repo)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == ".git" || strings.HasSuffix(e.Name(), ".db") {
			continue
		}
		if err := os.Symlink(filepath.Join(repo, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// failedBlock finds the README line the ERR trap reported and the output
// of the block it is in.
func failedBlock(out string) (line, blockOut string) {
	var cur []string
	line = "?"
	failed := false
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if n, ok := strings.CutPrefix(l, "@@readme-block "); ok {
			n, _, _ = strings.Cut(n, " ")
			cur, line, failed = nil, n, false
			continue
		}
		if n, ok := strings.CutPrefix(l, "@@readme-failed "); ok {
			if !failed { // the first report; a subshell's failure is reported again by its caller
				line, failed = n, true
			}
			continue
		}
		cur = append(cur, l)
	}
	if len(cur) > 200 {
		cur = append([]string{"…"}, cur[len(cur)-200:]...)
	}
	return line, strings.Join(cur, "\n")
}

// loggedErrors are the ERROR lines that servers started by earlier blocks
// wrote, which often explain a later block's failure.
func loggedErrors(out string) string {
	var errs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "level=ERROR") {
			errs = append(errs, l)
		}
	}
	return strings.Join(errs, "\n")
}

// logSlowBlocks logs the blocks that took a second or more, from the
// start times the script prints.
func logSlowBlocks(t *testing.T, out string) {
	var prevLine string
	var prev float64
	for _, l := range append(strings.Split(out, "\n"), "@@readme-block end "+strconv.FormatFloat(float64(time.Now().UnixNano())/1e9, 'f', 3, 64)) {
		rest, ok := strings.CutPrefix(l, "@@readme-block ")
		if !ok {
			continue
		}
		line, at, _ := strings.Cut(rest, " ")
		sec, err := strconv.ParseFloat(at, 64)
		if err != nil {
			continue
		}
		if prevLine != "" && sec-prev >= 1 {
			t.Logf("README.md:%s: block took %.1fs", prevLine, sec-prev)
		}
		prevLine, prev = line, sec
	}
}
