// A stdlib-only HTTPS server and client for Loupe's Go crypto/tls capture test.
//
//	tlsprog serve PORT   serves HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with a self-signed certificate
//	tlsprog client PORT  makes the test's requests over HTTP/1.1, then over HTTP/2
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func certificate() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func serve(port string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/missing") {
			http.Error(w, "nope", http.StatusNotFound)
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "secret page %s%s", r.URL.Path, body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{certificate()}}}
	fmt.Println("ready")
	// ServeTLS offers h2 and http/1.1 by ALPN.
	panic(srv.ServeTLS(ln, "", ""))
}

func client(port string) {
	base := "https://127.0.0.1:" + port
	insecure := &tls.Config{InsecureSkipVerify: true}
	// An empty TLSNextProto map turns HTTP/2 off: HTTP/1.1 over TLS.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: insecure,
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: insecure, ForceAttemptHTTP2: true}}
	for _, c := range []struct {
		client *http.Client
		proto  string
		prefix string
	}{{h1, "HTTP/1.1", "/h1"}, {h2, "HTTP/2.0", "/h2"}} {
		// One connection per client: three GETs (one 404), then a POST with a body.
		paths := []string{c.prefix + "/a", c.prefix + "/b", c.prefix + "/missing"}
		for _, p := range paths {
			resp, err := c.client.Get(base + p)
			if err != nil {
				panic(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.Proto != c.proto {
				panic("negotiated " + resp.Proto + ", want " + c.proto)
			}
		}
		resp, err := c.client.Post(base+c.prefix+"/post", "text/plain", strings.NewReader("hello"))
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.client.CloseIdleConnections()
	}
	fmt.Println("done")
}

func main() {
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2])
	case "client":
		client(os.Args[2])
	}
}
