package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// allowInsecureHelp is the --allow-insecure flag's help.
const allowInsecureHelp = "accept credentials over plaintext to a peer that is not on this machine (an http:// --endpoint, a NATS URL without TLS); off: such a start is refused"

// plaintextNATS reports, unless allowed, a NATS URL that would carry
// credentials in clear (or visible to anyone on the path, for the JWT of a
// .creds file) to a peer that is not on this machine. TLS is tls:// or wss://,
// or a CA or client certificate (nats.go then requires TLS).
func plaintextNATS(n queue.Config, allowInsecure bool) error {
	if allowInsecure || n.TLSCA != "" || n.TLSCert != "" {
		return nil
	}
	kind := natsCredentialKind(n)
	for _, raw := range strings.Split(n.URL, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		if !strings.Contains(raw, "://") {
			raw = "nats://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil {
			continue // Connect reports it
		}
		k := kind
		if u.User != nil {
			k = "credentials in the URL"
		}
		if k == "" || u.Scheme == "tls" || u.Scheme == "wss" || loopback(u.Hostname()) {
			continue
		}
		return fmt.Errorf("nats-url: %s is not TLS and the connection would carry %s in clear to a peer off this machine; "+
			"use tls:// (or --nats-tls-ca), or pass --allow-insecure to accept it", queue.RedactURL(raw), k)
	}
	return nil
}

// natsCredentialKind names the credentials n carries, "" for none.
func natsCredentialKind(n queue.Config) string {
	switch {
	case n.User != "":
		return "a user and password"
	case n.Token != "" || n.TokenFile != "":
		return "a token"
	case n.CredsFile != "":
		return "a user JWT (--nats-creds)"
	case n.NKeySeedFile != "":
		return "an NKey signature"
	}
	return ""
}

// plaintextEndpoint reports, unless allowed, an http:// API endpoint off
// this machine: every call carries the AK, its signature and, with
// temporary credentials, the security token.
func plaintextEndpoint(endpoint string, allowInsecure bool) error {
	if allowInsecure || endpoint == "" {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	if u.Scheme != "http" || loopback(u.Hostname()) {
		return nil // https, or on this machine
	}
	return fmt.Errorf("endpoint: %s is plain http to a peer off this machine and every call would carry the credentials "+
		"(AK, signature, security token) in clear; use https://, or pass --allow-insecure to accept it", endpoint)
}

// loopback reports whether host names this machine: localhost or a
// loopback address.
func loopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
