#![allow(clippy::unwrap_used)]
fn main() {
    let text = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    let mut counts = [0usize; 12]; let mut ex: Vec<Vec<&str>> = vec![vec![]; 12]; let mut n = 0;
    for line in text.lines() { n += 1; let f = rampart_scrub::Scrubber::debug_families(line); for b in 0..12 { if f & (1<<b) != 0 { counts[b]+=1; if ex[b].len() < 2 { ex[b].push(line); } } } }
    println!("{n} lines");
    for b in 0..12 { println!("{b} {} {:?}", counts[b], ex[b]); }
}
