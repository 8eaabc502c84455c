// Command libclient drives Debian's container-library-client (the Go library
// behind `apptainer push/pull library://`) against a registry, for sreg's
// end-to-end tests (tests/src/libclient.rs builds and runs it).
//
// Usage: libclient -url URL [-token T] [-arch A] [flags] COMMAND ARGS...
//
//	version                  GetVersion
//	push FILE REF TAGS       UploadImage (REF = entity/collection/container, TAGS = a,b)
//	pull REF OUT             GetImage, then DownloadImage, then the checksum check
//	pull-concurrent REF OUT  GetImage, then ConcurrentDownloadImage, then the checksum check
//	image REF                GetImage
//	search WORD              Search
//	delete REF ARCH          DeleteImage
//	token-status             GET <url>/v1/token-status, as `apptainer remote login` does
//
// Results go to stdout as one JSON document; errors go to stderr. Exit codes:
// 0 success, 1 failure, 2 usage, 3 the library answered "not found".
//
// Built offline in GOPATH mode against /usr/share/gocode (no go.mod), see
// shared/docs/test-components.md §1(b).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/apptainer/container-library-client/client"
)

const (
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3
)

var (
	baseURL     = flag.String("url", "", "library API base URL (libraryAPI.uri)")
	token       = flag.String("token", "", "access token; empty sends no Authorization header")
	arch        = flag.String("arch", "amd64", "architecture sent with image requests and tags")
	description = flag.String("description", "", "image description for push")
	concurrency = flag.Uint("concurrency", 3, "workers for pull-concurrent")
	partSize    = flag.Int64("part-size", 256*1024, "part size in bytes for pull-concurrent")
	noVerify    = flag.Bool("no-verify", false, "pull: skip the sha256 check against the image's hash")
	userAgent   = flag.String("user-agent", "Apptainer/1.0.0 (Linux amd64) Go/go1.19 sreg-tests", "User-Agent header")
	timeout     = flag.Duration("timeout", 10*time.Minute, "deadline for the whole command")
	verbose     = flag.Bool("v", false, "log the client's progress messages to stderr")
)

// stderrLogger makes the client's progress messages visible with -v.
type stderrLogger struct{}

func (stderrLogger) Log(v ...interface{}) { fmt.Fprintln(os.Stderr, v...) }
func (stderrLogger) Logf(format string, v ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", v...)
}

func usage(msg string) {
	fmt.Fprintln(os.Stderr, "libclient:", msg)
	fmt.Fprintln(os.Stderr, "usage: libclient -url URL [flags] version|push FILE REF TAGS|pull REF OUT|pull-concurrent REF OUT|image REF|search WORD|delete REF ARCH|token-status")
	os.Exit(exitUsage)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "libclient:", err)
	// The client reports a 404 on GET/DELETE as ErrNotFound, but DownloadImage
	// turns it into a plain error with this fixed text.
	if errors.Is(err, client.ErrNotFound) || strings.Contains(err.Error(), "requested image was not found in the library") {
		os.Exit(exitNotFound)
	}
	os.Exit(exitFailure)
}

func emit(v interface{}) {
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(v); err != nil {
		fail(err)
	}
}

func main() {
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		usage("no command")
	}
	if *baseURL == "" {
		usage("-url is required")
	}
	cmd, args := args[0], args[1:]
	want := map[string]int{
		"version": 0, "push": 3, "pull": 2, "pull-concurrent": 2,
		"image": 1, "search": 1, "delete": 2, "token-status": 0,
	}
	n, ok := want[cmd]
	if !ok {
		usage("unknown command " + cmd)
	}
	if len(args) != n {
		usage(fmt.Sprintf("%s takes %d arguments, got %d", cmd, n, len(args)))
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	if cmd == "token-status" {
		tokenStatus(ctx)
		return
	}

	cfg := &client.Config{BaseURL: *baseURL, AuthToken: *token, UserAgent: *userAgent}
	if *verbose {
		cfg.Logger = stderrLogger{}
	}
	c, err := client.NewClient(cfg)
	if err != nil {
		fail(err)
	}

	switch cmd {
	case "version":
		vi, err := c.GetVersion(ctx)
		if err != nil {
			fail(err)
		}
		emit(vi)
	case "push":
		push(ctx, c, args[0], args[1], args[2])
	case "pull":
		pull(ctx, c, args[0], args[1], false)
	case "pull-concurrent":
		pull(ctx, c, args[0], args[1], true)
	case "image":
		img, err := c.GetImage(ctx, *arch, strings.TrimPrefix(args[0], "library://"))
		if err != nil {
			fail(err)
		}
		emit(img)
	case "search":
		// As `apptainer search`: arch always (host arch by default), signed only on request.
		q := map[string]string{"value": args[0]}
		if *arch != "" {
			q["arch"] = *arch
		}
		res, err := c.Search(ctx, q)
		if err != nil {
			fail(err)
		}
		emit(res)
	case "delete":
		ref := strings.TrimPrefix(args[0], "library://")
		if err := c.DeleteImage(ctx, ref, args[1]); err != nil {
			fail(err)
		}
		emit(map[string]string{"deleted": ref, "arch": args[1]})
	}
}

// push mirrors `apptainer push FILE library://REF:TAGS`: UploadImage itself
// does the get-or-create of entity, collection, container and image, the
// upload (v1, v2 single part or v2 multipart, chosen from /version) and the
// tag calls.
func push(ctx context.Context, c *client.Client, file, ref, tags string) {
	f, err := os.Open(file)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	// The client hashes the file too but does not return the hash; report it.
	sum, size, err := sha256File(f)
	if err != nil {
		fail(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		fail(err)
	}
	var tagList []string
	for _, t := range strings.Split(tags, ",") {
		if t != "" {
			tagList = append(tagList, t)
		}
	}
	ref = strings.TrimPrefix(ref, "library://")
	res, err := c.UploadImage(ctx, f, ref, *arch, tagList, *description, nil)
	if err != nil {
		fail(err)
	}
	emit(map[string]interface{}{
		"ref":      ref,
		"arch":     *arch,
		"tags":     tagList,
		"hash":     "sha256." + sum,
		"size":     size,
		"complete": res, // null when the server sent no completion body or the image was already uploaded
	})
}

// pull mirrors `apptainer pull library://REF`: look the image up first (its
// hash is the cache key), download, then compare the file's sha256 with the
// image's hash as Apptainer does with its cache enabled. The file is written
// next to OUT and renamed, so a failed pull leaves no OUT behind.
func pull(ctx context.Context, c *client.Client, ref, out string, concurrent bool) {
	ref = strings.TrimPrefix(ref, "library://")
	path, tag := ref, "latest"
	if i := strings.LastIndex(ref, ":"); i >= 0 {
		path, tag = ref[:i], ref[i+1:]
	}
	img, err := c.GetImage(ctx, *arch, path+":"+tag)
	if err != nil {
		fail(err)
	}
	tmp := out + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		fail(err)
	}
	defer os.Remove(tmp)
	if concurrent {
		// BufferSize must be set: the client allocates exactly that much per read
		// and loops forever on a zero-length buffer.
		spec := &client.Downloader{Concurrency: *concurrency, PartSize: *partSize, BufferSize: 32 * 1024}
		err = c.ConcurrentDownloadImage(ctx, f, *arch, path, tag, spec, nil)
	} else {
		err = c.DownloadImage(ctx, f, *arch, path, tag, nil)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fail(err)
	}
	g, err := os.Open(tmp)
	if err != nil {
		fail(err)
	}
	sum, size, err := sha256File(g)
	g.Close()
	if err != nil {
		fail(err)
	}
	if !*noVerify && strings.HasPrefix(img.Hash, "sha256.") && img.Hash != "sha256."+sum {
		fail(fmt.Errorf("checksum mismatch: image hash %s, downloaded file sha256.%s (%d bytes)", img.Hash, sum, size))
	}
	if err := os.Rename(tmp, out); err != nil {
		fail(err)
	}
	emit(map[string]interface{}{
		"path":  out,
		"hash":  "sha256." + sum,
		"size":  size,
		"image": img,
	})
}

// tokenStatus is what Apptainer's remote login does (the library client has
// no call for it): GET {tokenAPI}/v1/token-status with a "Bearer" token
// (unlike the library client's "BEARER"); 200 means valid, the body is ignored.
func tokenStatus(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(*baseURL, "/")+"/v1/token-status", nil)
	if err != nil {
		fail(err)
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	req.Header.Set("User-Agent", *userAgent)
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		fail(err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	// Apptainer's wording for each status.
	msg := map[int]string{200: "Access Token Verified", 404: "Invalid Credentials", 500: "Internal Server Error"}[res.StatusCode]
	if msg == "" {
		msg = "Unknown"
	}
	emit(map[string]interface{}{"status": res.StatusCode, "valid": res.StatusCode == http.StatusOK, "message": msg})
}

func sha256File(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}
