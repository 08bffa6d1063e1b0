// Package config loads, validates and returns the gateway's configuration:
// the embedded defaults, an optional YAML file merged over them, and
// CONSENTGATE_* environment overrides. It is the only importer of viper.
// Load returns one immutable *Config; nothing reads viper afterwards, and a
// reload is a fresh Load swapped in whole by the proxy. The package does no
// network I/O and does not log: problems are returned, warnings listed.
package config
