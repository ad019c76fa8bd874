//! Pictures for the demo catalog, drawn here (no downloads): a night sky in the product's
//! own colours, with stars and a planet whose size, shading and ring follow from its SKU,
//! and a band of colour for its category — distinct per product, the same every time.

use sha2::Digest;

/// Width of a demo picture.
pub const WIDTH: u32 = 480;
/// Height of a demo picture.
pub const HEIGHT: u32 = 360;

/// `h` in degrees, `s` and `v` in 0..=1, to RGB.
fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match (h as u32 / 60) % 6 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    [r + m, g + m, b + m]
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// The picture of a product, as PNG bytes.
pub fn picture(sku: &str, category: &str) -> Vec<u8> {
    let seed = sha2::Sha256::digest(sku.as_bytes());
    let cat = sha2::Sha256::digest(category.as_bytes());
    let unit = |i: usize| f32::from(seed[i]) / 255.0;
    let hue = unit(0) * 360.0;
    let sky_top = hsv((hue + 200.0) % 360.0, 0.55, 0.10);
    let sky_bottom = hsv((hue + 230.0) % 360.0, 0.60, 0.35);
    let planet = hsv(hue, 0.55 + 0.35 * unit(1), 0.95);
    let band = hsv(f32::from(cat[0]) / 255.0 * 360.0, 0.65, 0.85);
    let (w, h) = (WIDTH as f32, HEIGHT as f32);
    let (cx, cy) = (w * (0.35 + 0.3 * unit(2)), h * (0.38 + 0.2 * unit(3)));
    let r = h * (0.18 + 0.14 * unit(4));
    let ringed = seed[5] % 3 == 0;
    let tilt = 0.25 + 0.35 * unit(6);
    let stars: Vec<(f32, f32, f32)> = (0..24)
        .map(|i| {
            let a = seed[(7 + i) % 32];
            let b = seed[(13 + 3 * i) % 32]
                .wrapping_mul(31)
                .wrapping_add((i as u8).wrapping_mul(17));
            (
                f32::from(a) / 255.0 * w,
                f32::from(b) / 255.0 * h * 0.8,
                0.8 + f32::from(a % 3) * 0.5,
            )
        })
        .collect();
    let light = (-0.55f32, -0.6f32);
    let img = image::RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        let mut c = mix(sky_top, sky_bottom, fy / h);
        for &(sx, sy, size) in &stars {
            if (fx - sx).abs() > 3.0 || (fy - sy).abs() > 3.0 {
                continue;
            }
            let d = ((fx - sx).powi(2) + (fy - sy).powi(2)).sqrt();
            if d < size * 1.5 {
                c = mix(
                    c,
                    [1.0, 1.0, 0.95],
                    (1.0 - d / (size * 1.5)).clamp(0.0, 1.0),
                );
            }
        }
        let (dx, dy) = ((fx - cx) / r, (fy - cy) / r);
        let d2 = dx * dx + dy * dy;
        // The ring behind the planet, then the planet, then the ring in front.
        let ring = |front: bool| -> Option<f32> {
            if !ringed {
                return None;
            }
            let ry = dy / tilt;
            let rd = (dx * dx + ry * ry).sqrt();
            ((1.35..1.75).contains(&rd) && (dy > 0.0) == front)
                .then(|| 1.0 - ((rd - 1.55).abs() / 0.2))
        };
        if let Some(t) = ring(false) {
            c = mix(c, band, 0.8 * t);
        }
        if d2 <= 1.0 {
            let z = (1.0 - d2).sqrt();
            let shade = ((dx * light.0 + dy * light.1) + z * 0.8).clamp(0.15, 1.2);
            let stripe = ((dy * 6.0 + unit(8) * 6.0).sin() * 0.08) + 1.0;
            let mut p = planet.map(|v| (v * shade * stripe).min(1.0));
            // A soft edge against the sky.
            let edge = ((1.0 - d2.sqrt()) * r).clamp(0.0, 1.0);
            p = mix(c, p, edge);
            c = p;
        }
        if let Some(t) = ring(true) {
            c = mix(c, band, 0.8 * t);
        }
        // The category's band along the bottom.
        if fy > h - 14.0 {
            c = mix(c, band, 0.9);
        }
        image::Rgb(c.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("a picture encodes");
    out.into_inner()
}

#[cfg(test)]
mod tests {
    #[test]
    fn pictures_are_distinct_per_product_and_stable() {
        let a = super::picture("H-001", "Space Suits/Helmets");
        let b = super::picture("H-002", "Space Suits/Helmets");
        assert_ne!(a, b);
        assert_eq!(a, super::picture("H-001", "Space Suits/Helmets"));
        let info = crate::media::inspect(&a).unwrap();
        assert_eq!((info.width, info.height), (super::WIDTH, super::HEIGHT));
    }
}
