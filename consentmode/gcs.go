package consentmode

import "errors"

// Sentinel errors. They cost no allocation, so a flood of bad hits stays cheap.
var (
	ErrMalformedGCS = errors.New("consentmode: malformed gcs")
	ErrMalformedGCD = errors.New("consentmode: malformed gcd")
	ErrMalformedNPA = errors.New("consentmode: malformed npa")
)

// ParseGCS parses a gcs value such as "G100": "G1", then one character for
// ad_storage and one for analytics_storage ('1' granted, '0' denied, '-' no
// state). Anything else is ErrMalformedGCS; callers then deny both types.
// The result does not refer to b.
func ParseGCS(b []byte) (adStorage, analyticsStorage Value, err error) {
	if len(b) != 4 || b[0] != 'G' || b[1] != '1' {
		return Unset, Unset, ErrMalformedGCS
	}
	ad, okAd := gcsChar(b[2])
	an, okAn := gcsChar(b[3])
	if !okAd || !okAn {
		return Unset, Unset, ErrMalformedGCS
	}
	return ad, an, nil
}

func gcsChar(c byte) (Value, bool) {
	switch c {
	case '1':
		return Granted, true
	case '0':
		return Denied, true
	case '-':
		return Unset, true
	}
	return Unset, false
}

// AppendGCS appends the gcs value for the two storage states: '1' granted,
// '0' denied, '-' unset.
func AppendGCS(dst []byte, adStorage, analyticsStorage Value) []byte {
	return append(dst, 'G', '1', gcsByte(adStorage), gcsByte(analyticsStorage))
}

func gcsByte(v Value) byte {
	switch v {
	case Granted:
		return '1'
	case Denied:
		return '0'
	}
	return '-'
}

// ErrMalformedFlag reports a dma or gcu value that is not 0 or 1.
var ErrMalformedFlag = errors.New("consentmode: malformed flag")

// ParseFlag parses the 0/1 flags dma (the EEA Digital Markets Act regime
// applies to the hit) and gcu (the hit was sent because consent was just
// updated). They describe the hit; they grant and deny nothing. The
// result does not refer to b.
func ParseFlag(b []byte) (bool, error) {
	if len(b) == 1 && (b[0] == '0' || b[0] == '1') {
		return b[0] == '1', nil
	}
	return false, ErrMalformedFlag
}

// ParseNPA parses npa: "1" means ad_personalization denied, "0" says
// nothing (it never grants). Anything else is ErrMalformedNPA.
func ParseNPA(b []byte) (Value, error) {
	if len(b) == 1 {
		switch b[0] {
		case '1':
			return Denied, nil
		case '0':
			return Unset, nil
		}
	}
	return Denied, ErrMalformedNPA
}
