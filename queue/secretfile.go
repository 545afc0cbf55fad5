package queue

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// secretFile is a password or token kept in a file, read again at each
// (re)connect so that a rotated Kubernetes Secret is picked up. A read
// that fails after the first keeps the last value (the server then says
// whether it still holds).
type secretFile struct {
	flag, path string
	log        *zap.Logger

	mu   sync.Mutex
	last string
}

// newSecretFile reads the file once, so a missing or empty one stops the
// start with an error naming the flag.
func newSecretFile(flag, path string, log *zap.Logger) (*secretFile, error) {
	s := &secretFile{flag: flag, path: path, log: log}
	v, err := s.load()
	if err != nil {
		return nil, err
	}
	s.last = v
	return s, nil
}

func (s *secretFile) load() (string, error) {
	b, err := os.ReadFile(s.path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", s.flag, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s: %s is empty", s.flag, s.path)
	}
	return v, nil
}

// read returns the file's current content, or the last good one.
func (s *secretFile) read() string {
	v, err := s.load()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.log.Warn("re-reading a NATS secret file failed; using its last content", zap.String("flag", s.flag), zap.Error(err))
		return s.last
	}
	s.last = v
	return v
}
