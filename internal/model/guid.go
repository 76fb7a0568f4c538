package model

import "strings"

// ParseGUID accepts a GUID in the forms people paste and Microsoft sends:
// any case, optionally in braces, with surrounding white space. It returns the
// GUID in canonical lower case, and reports whether s was one. This is the
// one GUID rule of the service: the API's client and tenant ids, the
// secret-that-is-a-GUID hint, Microsoft's WhoAmI ids and the simulator.
func ParseGUID(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 {
		return "", false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// IsGUID reports whether s is a GUID by the rule of ParseGUID.
func IsGUID(s string) bool {
	_, ok := ParseGUID(s)
	return ok
}
