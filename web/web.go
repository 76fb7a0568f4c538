// Package web holds the modal's static files: the <dynconn-connect> web
// component, the demo page around it and the setup guide it links to. They
// are compiled into the binary and served by package api under /modal/.
package web

import "embed"

// FS holds the files at its root: index.html (the demo page), demo.js,
// demo.css, dynconn-connect.js and guide.html.
//
//go:embed *.html *.js *.css
var FS embed.FS
