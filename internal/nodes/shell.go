package nodes

import "strings"

// quote returns s as one single-quoted POSIX sh word. Every value that
// reaches a remote shell goes through here, as a positional argument of a
// fixed script, never spliced into the script itself.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// command builds `[sudo -n --] sh -c SCRIPT sh ARGS...` with every word quoted.
func command(sudo bool, script string, args ...string) string {
	words := make([]string, 0, len(args)+6)
	if sudo {
		words = append(words, "sudo", "-n", "--")
	}
	words = append(words, "sh", "-c", quote(script), "sh")
	for _, a := range args {
		words = append(words, quote(a))
	}
	return strings.Join(words, " ")
}
