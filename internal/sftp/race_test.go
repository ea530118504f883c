//go:build race

package sftp

// raceBuild: the race detector's sync.Pool drops a quarter of what is put
// back, so allocation counts that rely on pools do not hold.
const raceBuild = true
