package codearts

import (
	"bytes"
	"encoding/json"
	"html"
	"regexp"
	"strings"
	"unicode"
)

// answer is what a response body says, read by this package rather than by
// the SDK: the SDK drops a 2xx body's error_code, leaves ErrorCode empty
// when error_msg is, and keeps a stringified JSON body as raw text.
type answer struct {
	// JSON reports that the body was a JSON object (directly or as a JSON
	// string holding one).
	JSON bool
	// Status is the body's "status" ("success" or "fail" on a recover).
	Status string
	// ErrorCode and ErrorMsg are the body's error_code/error_msg (or
	// code/message, also one object level down, as the SDK reads them);
	// for a body that is not JSON, ErrorMsg is a short one-line summary
	// of its text with markup removed.
	ErrorCode string
	ErrorMsg  string
}

// applied reports whether the answer says the recover took effect: a JSON
// body whose status is "success" and that carries no error code.
func (a answer) applied() bool {
	return a.JSON && a.Status == "success" && a.ErrorCode == ""
}

// maxSummary bounds the summary of a non-JSON body (an HTML page).
const maxSummary = 160

// parseAnswer reads a response body: a JSON object, a JSON string holding
// a JSON object, or anything else (HTML, text), which is summarised.
func parseAnswer(body []byte) answer {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '"' {
		var inner string
		if json.Unmarshal(body, &inner) == nil {
			body = bytes.TrimSpace([]byte(inner))
		}
	}
	var obj map[string]any
	if len(body) > 0 && body[0] == '{' && json.Unmarshal(body, &obj) == nil {
		a := answer{JSON: true, Status: str(obj["status"])}
		a.ErrorCode, a.ErrorMsg = errorFields(obj)
		if a.ErrorCode == "" && a.ErrorMsg == "" {
			// One level down, as {"error":{"code":…,"message":…}}.
			for _, v := range obj {
				if m, ok := v.(map[string]any); ok {
					if a.ErrorCode, a.ErrorMsg = errorFields(m); a.ErrorCode != "" {
						break
					}
				}
			}
		}
		return a
	}
	return answer{ErrorMsg: summarize(body)}
}

func errorFields(m map[string]any) (code, msg string) {
	if code, msg = str(m["error_code"]), str(m["error_msg"]); code != "" || msg != "" {
		return code, msg
	}
	return str(m["code"]), str(m["message"])
}

// str returns v when it is a string; numbers and other types are not codes.
func str(v any) string {
	s, _ := v.(string)
	return strings.TrimSpace(s)
}

var (
	titleRE  = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	scriptRE = regexp.MustCompile(`(?is)<(script|style)[^>]*>.*?</(script|style)>`)
	tagRE    = regexp.MustCompile(`(?s)<[^>]*>`)
)

// summarize turns a non-JSON body into one short line without markup: an
// HTML page's title (or its text without markup), or the text itself.
func summarize(body []byte) string {
	s := string(body)
	if m := titleRE.FindStringSubmatch(s); m != nil && strings.TrimSpace(m[1]) != "" {
		s = m[1] // the page's own one-line summary ("502 Bad Gateway")
	}
	s = scriptRE.ReplaceAllString(s, " ")
	s = tagRE.ReplaceAllString(s, " ")
	s = html.UnescapeString(s)
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	return truncate(s, maxSummary)
}
