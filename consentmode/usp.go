package consentmode

import "errors"

// ErrMalformedUSPrivacy is returned for a us_privacy value that is not
// "1" followed by three of 'Y', 'N', '-'. Callers treat it as opted out.
var ErrMalformedUSPrivacy = errors.New("consentmode: malformed us privacy string")

// USPrivacy is an IAB US Privacy (CCPA) string such as "1YNN". Each of the
// three flags is 'Y', 'N' or '-' (not applicable); the zero value is not a
// valid string.
type USPrivacy struct {
	Version     byte // specification version, always 1
	Notice      byte // explicit notice / opportunity to opt out given
	OptOutSale  byte // 'Y': the user opted out of the sale (and sharing) of personal data
	LSPACovered byte // the transaction is covered by the IAB LSPA
}

// ParseUSPrivacy parses a US Privacy string: '1' then three characters from
// 'Y', 'N' and '-'. Lower-case 'y' and 'n' are accepted and stored upper
// case: the specification is written in upper case, and reading a lower-case
// 'y' as anything but "yes" would only lose an opt-out. Anything else is
// ErrMalformedUSPrivacy. It costs no allocation; the result does not refer
// to b.
func ParseUSPrivacy(b []byte) (USPrivacy, error) {
	if len(b) != 4 || b[0] != '1' {
		return USPrivacy{}, ErrMalformedUSPrivacy
	}
	var flags [3]byte
	for i, c := range b[1:] {
		switch c {
		case 'Y', 'y':
			flags[i] = 'Y'
		case 'N', 'n':
			flags[i] = 'N'
		case '-':
			flags[i] = '-'
		default:
			return USPrivacy{}, ErrMalformedUSPrivacy
		}
	}
	return USPrivacy{Version: 1, Notice: flags[0], OptOutSale: flags[1], LSPACovered: flags[2]}, nil
}

// Applies reports whether the string applies at all: "1---" says the
// publisher is not subject to US privacy law for this user.
func (u USPrivacy) Applies() bool {
	return u.Notice != '-' || u.OptOutSale != '-' || u.LSPACovered != '-'
}

// OptedOut reports whether the user opted out of the sale of personal data
// (third character 'Y').
func (u USPrivacy) OptedOut() bool { return u.OptOutSale == 'Y' }

// String returns the canonical four-character form, such as "1YNN", or ""
// for the zero value.
func (u USPrivacy) String() string {
	if u.Version == 0 {
		return ""
	}
	return string([]byte{'0' + u.Version, u.Notice, u.OptOutSale, u.LSPACovered})
}
