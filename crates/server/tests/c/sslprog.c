/* A TLS client and server linked statically against OpenSSL (libssl.a, libcrypto.a), for the
 * static OpenSSL capture test (crates/server/tests/tls_capture.rs).
 *   sslprog serve PORT CERT KEY    serves HTTPS on 127.0.0.1:PORT, prints "ready", one connection at a time
 *   sslprog client PORT PATH...    one connection, one GET per path (kept alive), prints "done"
 * The server reads and writes with SSL_read/SSL_write, the client with SSL_read_ex/SSL_write_ex. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "%s failed\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* Reads one request head (no body) into buf; returns its length, 0 at end of connection. */
static int read_head(SSL *ssl, char *buf, int cap)
{
	int len = 0;
	while (len < cap - 1) {
		int n = SSL_read(ssl, buf + len, cap - 1 - len);
		if (n <= 0)
			return 0;
		len += n;
		buf[len] = 0;
		if (strstr(buf, "\r\n\r\n"))
			return len;
	}
	return 0;
}

static int serve(int port, const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		die("server context");
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 16) != 0)
		die("bind");
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c = accept(fd, NULL, NULL);
		if (c < 0)
			continue;
		SSL *ssl = SSL_new(ctx);
		SSL_set_fd(ssl, c);
		if (SSL_accept(ssl) == 1) {
			char req[4096], resp[8192], path[1024];
			while (read_head(ssl, req, sizeof(req)) > 0) {
				if (sscanf(req, "GET %1000s ", path) != 1)
					break;
				int missing = strcmp(path, "/missing") == 0;
				char body[1100];
				snprintf(body, sizeof(body), missing ? "nope" : "secret page %s", path);
				int n = snprintf(resp, sizeof(resp),
						 "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
						 missing ? "404 Not Found" : "200 OK", strlen(body), body);
				if (SSL_write(ssl, resp, n) != n)
					break;
			}
			SSL_shutdown(ssl);
		}
		SSL_free(ssl);
		close(c);
	}
	return 0;
}

static int client(int port, int npaths, char **paths)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		die("client context");
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
		die("connect");
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1)
		die("SSL_connect");
	for (int i = 0; i < npaths; i++) {
		char req[2048], resp[8192];
		int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: sslprog\r\n\r\n",
				 paths[i]);
		size_t done = 0, got = 0;
		if (SSL_write_ex(ssl, req, (size_t)n, &done) != 1 || done != (size_t)n)
			die("SSL_write_ex");
		/* Head, then Content-Length bytes of body. */
		char *end = NULL;
		long want = -1;
		for (;;) {
			size_t r = 0;
			if (got >= sizeof(resp) - 1 || SSL_read_ex(ssl, resp + got, sizeof(resp) - 1 - got, &r) != 1)
				die("SSL_read_ex");
			got += r;
			resp[got] = 0;
			if (!end && (end = strstr(resp, "\r\n\r\n"))) {
				char *cl = strstr(resp, "Content-Length: ");
				want = (long)(end + 4 - resp) + (cl ? atol(cl + 16) : 0);
			}
			if (end && (long)got >= want)
				break;
		}
	}
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
	printf("done\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && strcmp(argv[1], "serve") == 0)
		return serve(atoi(argv[2]), argv[3], argv[4]);
	if (argc >= 3 && strcmp(argv[1], "client") == 0)
		return client(atoi(argv[2]), argc - 3, argv + 3);
	fprintf(stderr, "usage: sslprog serve PORT CERT KEY | client PORT PATH...\n");
	return 2;
}
