# Draws bench.svg from bench.dat (`make docs`). Fixed size and font, so the
# output is the same bytes on every run.
set terminal svg size 900,620 font "DejaVu Sans,11" background "#ffffff" noenhanced
set output "/dev/stdout"
set datafile separator "\t"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.75
set grid ytics lc rgb "#dddddd"
set border 3
set tics nomirror
set xtics font ",9" offset 0,-0.3
set key off
set yrange [0:*]
set bmargin 3.5
set lmargin 9
set multiplot layout 2,1 title "consentgate vs nginx on 2 vCPUs over loopback (run of 2026-11-30; method in docs/benchmarks.md)" font ",12"
set title "max throughput, req/s (higher is better)"
plot "bench.dat" using 2:xtic(1) lc rgb "#4477aa", "" using 0:2:(sprintf("%d", $2)) with labels offset 0,0.7 font ",9"
set title "CPU seconds per 100k hits at 16,000 req/s (lower is better)"
plot "bench.dat" using 4:xtic(1) lc rgb "#cc6677", "" using 0:4:(sprintf("%.2f", $4)) with labels offset 0,0.7 font ",9"
unset multiplot
