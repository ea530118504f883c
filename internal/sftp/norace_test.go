//go:build !race

package sftp

const raceBuild = false
