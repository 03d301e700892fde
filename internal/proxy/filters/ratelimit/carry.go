package ratelimit

import "strconv"

// A proxy compiles a whole new configuration for every xDS update, also
// when only an endpoint changed. So that such an update does not refill
// every bucket (Envoy keeps a route configuration, and its buckets, until
// that route configuration changes), a new configuration may continue the
// bucket of the previous configuration's identical one: same stats prefix,
// same max_tokens, tokens_per_fill and fill_interval.

// BucketKey identifies the config's bucket across configurations: its
// stats prefix and bucket parameters. "" when it has no bucket.
func (c *Config) BucketKey() string {
	if c == nil || c.bucket == nil {
		return ""
	}
	return "http|" + c.statPrefix + "|" + c.bucket.key()
}

// ContinueFrom makes c use prev's bucket, tokens included, when both have
// the same BucketKey; otherwise c keeps its own. Call it before c is used.
func (c *Config) ContinueFrom(prev *Config) {
	if k := c.BucketKey(); k != "" && k == prev.BucketKey() {
		c.bucket = prev.bucket
	}
}

// BucketKey identifies the config's bucket across configurations.
func (c *NetConfig) BucketKey() string {
	if c == nil || c.bucket == nil {
		return ""
	}
	return "net|" + c.statPrefix + "|" + c.bucket.key()
}

// ContinueFrom makes c use prev's bucket when both have the same
// BucketKey. Call it before c is used.
func (c *NetConfig) ContinueFrom(prev *NetConfig) {
	if k := c.BucketKey(); k != "" && k == prev.BucketKey() {
		c.bucket = prev.bucket
	}
}

// key is the bucket's parameters.
func (b *Bucket) key() string {
	return strconv.FormatInt(b.max, 10) + "/" + strconv.FormatInt(b.perFill, 10) + "/" + strconv.FormatInt(b.interval, 10)
}
