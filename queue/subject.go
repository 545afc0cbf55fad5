package queue

import "strings"

// subjectCovered reports whether every subject that subject (itself
// possibly with * and > wildcards) names is matched by filter: the rule of
// nats-server's SubjectMatchesFilter, kept here so the worker does not
// link the server.
func subjectCovered(subject, filter string) bool {
	s, f := strings.Split(subject, "."), strings.Split(filter, ".")
	for i, ft := range f {
		if ft == ">" {
			return len(s) > i
		}
		if i >= len(s) {
			return false
		}
		switch st := s[i]; {
		case st == ">":
			return false // more than filter's single token can match
		case ft == "*":
		case st == "*" || st != ft:
			return false
		}
	}
	return len(s) == len(f)
}
