// Package jobid knows the one form the CodeArts Build API takes for a job
// id: exactly 32 ASCII letters or digits. The decoder, the API client and
// the simulator all check it here, so they can never disagree.
package jobid

// Len is the length of a job id.
const Len = 32

var alnum = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	return t
}()

// Valid reports whether id is exactly 32 ASCII letters or digits, so it is
// safe to put in a URL path as it is.
func Valid(id string) bool {
	if len(id) != Len {
		return false
	}
	for i := range len(id) {
		if !alnum[id[i]] {
			return false
		}
	}
	return true
}
