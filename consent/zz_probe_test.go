package consent

import ("testing"; "fmt")

func TestZZProbe(t *testing.T) {
	for _, in := range []string{"<mailto:a@b.fr>", "x@.fr", "x@a..fr", "\ufeffa@b.fr", "a\u200b@b.fr", "a@b\u200b.fr", "a@b.fr.", "a@localhost", "a@-b.fr", "a@b_c.fr", "a@1.2.3.4", "a@[1.2.3.4]", "İ@b.fr", "ẞ@b.fr", "a@ÉXAMPLE.fr", "a@xn--zz.fr", "a@b.fr\u0301", "\u0301@b.fr", "\"a b\"@c.fr", "a@b..", "a@.", "a@b.fr\u00ad", "élodie@exämple.fr", "a@faß.de"} {
		n, o, err := NormalizeEmail(in)
		fmt.Printf("%q -> %q %q %v\n", in, n, o, err)
	}
}
