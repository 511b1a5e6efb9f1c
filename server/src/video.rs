//! H.264 for the view stream: Constrained Baseline (no B-frames, so every frame can be shown
//! as soon as it is decoded), encoded on the CPU by Cisco's OpenH264 (the `openh264` crate,
//! built from its bundled source with nasm's SIMD), decoded in browsers by WebCodecs.
//!
//! One [`VideoEncoder`] per stream (a steered view or a shared session's leader): P-frames
//! refer to the frames before them, so one bitstream belongs to one sequence of pictures. The
//! caller decides when a keyframe is due (a viewer joined or asked, a periodic refresh); a
//! change of size starts a new sequence with a keyframe by itself. Colour is BT.601 limited
//! range, as OpenH264 converts RGB and as the stream's VUI says.
//!
//! Rate. Frames are drawn only when the view changes, so the bitrate is set per frame:
//! [`RATE`], 0.1 bits a pixel of the frame at the stream's `fps` (OpenH264 spreads the
//! bitrate over `max_frame_rate` frames a second): about 7 KiB a 720p frame in motion, 5% of
//! the JPEG. The twin's frames (sharp, unfiltered edges) cost H.264 many bits: at this rate
//! the picture in motion is soft (SSIM 0.75 in the benchmark, where JPEG quality 80 gets
//! 0.93), and the sharp JPEG still follows once the view rests. The benchmark
//! (`BENCHMARKS.md`, "The view stream") has the whole table of rates against quality.

use crate::error::AppError;
use openh264::OpenH264API;
use openh264::encoder::{
    Complexity, Encoder, EncoderConfig, FrameRate, FrameType, Profile, RateControlMode, UsageType,
    VuiConfig,
};
use openh264::formats::{RgbaSliceU8, YUVBuffer};

/// How the stream's encoder spends bits (chosen from the benchmark's table of rates).
pub const RATE: Rate = Rate::BitsPerPixel(0.1);
/// The largest frame OpenH264 encodes (level 5.2), pixels.
pub const MAX_SIZE: (u32, u32) = (3840, 2160);

/// One encoded picture: Annex B NAL units (start codes, SPS and PPS before every keyframe).
#[derive(Debug, Clone)]
pub struct VideoFrame {
    pub bytes: Vec<u8>,
    /// An IDR picture: a decoder can start here.
    pub key: bool,
}

pub struct VideoEncoder {
    encoder: Encoder,
    yuv: YUVBuffer,
    size: (u32, u32),
    fps: f32,
    rate: Rate,
}

/// How the encoder spends bits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Rate control aiming at this many bits a pixel a frame.
    BitsPerPixel(f32),
    /// No rate control: every frame at this quantiser (0 best ..= 51).
    Qp(u8),
}

/// Whether `width`x`height` can be a video stream (4:2:0 needs even sides).
pub fn check_size(width: u32, height: u32) -> Result<(), String> {
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(format!(
            "{width}x{height}: H.264 frames need an even width and height"
        ));
    }
    let (long, short) = (width.max(height), width.min(height));
    if long > MAX_SIZE.0 || short > MAX_SIZE.1 {
        return Err(format!(
            "{width}x{height}: H.264 frames are at most {}x{}",
            MAX_SIZE.0, MAX_SIZE.1
        ));
    }
    Ok(())
}

impl VideoEncoder {
    /// An encoder for frames of `size` at up to `fps` frames a second, at the stream's rate.
    pub fn new(size: (u32, u32), fps: f32) -> Result<VideoEncoder, AppError> {
        VideoEncoder::with_rate(size, fps, RATE)
    }

    /// An encoder spending bits as `rate` says (the benchmark compares rates).
    pub fn with_rate(size: (u32, u32), fps: f32, rate: Rate) -> Result<VideoEncoder, AppError> {
        check_size(size.0, size.1).map_err(|m| AppError::bad("width", m))?;
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .usage_type(UsageType::CameraVideoRealTime)
            .max_frame_rate(FrameRate::from_hz(fps))
            // Every frame asked for is a frame sent: the stream already draws only changes.
            .skip_frames(false)
            .complexity(Complexity::Low)
            .vui(VuiConfig::bt601());
        let config = match rate {
            Rate::BitsPerPixel(bits) => {
                let bitrate_bps = (size.0 as f32 * size.1 as f32 * bits * fps).max(50_000.0);
                config
                    .rate_control_mode(RateControlMode::Bitrate)
                    .bitrate(openh264::encoder::BitRate::from_bps(bitrate_bps as u32))
            }
            // OpenH264 keeps its own quantiser without rate control: quality mode, held to
            // the one quantiser, does what is asked.
            Rate::Qp(qp) => {
                let qp = qp.min(51);
                config
                    .rate_control_mode(RateControlMode::Quality)
                    .bitrate(openh264::encoder::BitRate::from_bps(100_000_000))
                    .qp(openh264::encoder::QpRange::new(qp, qp))
            }
        };
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| AppError::Internal(format!("cannot start the H.264 encoder: {e}")))?;
        Ok(VideoEncoder {
            encoder,
            yuv: YUVBuffer::new(size.0 as usize, size.1 as usize),
            size,
            fps,
            rate,
        })
    }

    /// Encodes one frame; a keyframe when `key`. A frame of another size starts a new
    /// sequence (a new encoder, with the bitrate of that size), with a keyframe.
    pub fn encode(&mut self, image: &image::RgbaImage, key: bool) -> Result<VideoFrame, AppError> {
        let (width, height) = image.dimensions();
        if (width, height) != self.size {
            *self = VideoEncoder::with_rate((width, height), self.fps, self.rate)?;
        }
        let dims = (width as usize, height as usize);
        self.yuv.read_rgba8(RgbaSliceU8::new(image.as_raw(), dims));
        if key {
            self.encoder.force_intra_frame();
        }
        let stream = self
            .encoder
            .encode(&self.yuv)
            .map_err(|e| AppError::Internal(format!("cannot encode H.264: {e}")))?;
        let key = stream.frame_type() == FrameType::IDR;
        Ok(VideoFrame {
            bytes: stream.to_vec(),
            key,
        })
    }
}

/// The WebCodecs codec string (`avc1.PPCCLL`) of a keyframe, from its sequence parameter set:
/// profile, constraint flags and level as the encoder wrote them.
pub fn codec_string(annex_b: &[u8]) -> Option<String> {
    openh264::nal_units(annex_b).find_map(|nal| {
        // Skip the start code (3 or 4 bytes); the NAL header follows.
        let body = nal
            .strip_prefix(&[0, 0, 0, 1])
            .or_else(|| nal.strip_prefix(&[0, 0, 1]))?;
        match body {
            [header, profile, flags, level, ..] if header & 0x1f == 7 => {
                Some(format!("avc1.{profile:02X}{flags:02X}{level:02X}"))
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::decoder::Decoder;

    /// A picture with edges and flat areas, shifted by `offset` pixels (a camera move).
    fn picture(width: u32, height: u32, offset: u32) -> image::RgbaImage {
        image::RgbaImage::from_fn(width, height, |x, y| {
            let (x, y) = (x + offset, y);
            let block = ((x / 24) + (y / 24)) % 3;
            image::Rgba([
                (40 + 90 * block) as u8,
                (x % 256) as u8,
                (y % 200) as u8,
                255,
            ])
        })
    }

    #[test]
    fn frames_decode_keyframes_come_when_asked_and_sizes_are_checked() {
        let mut encoder = VideoEncoder::new((320, 180), 10.0).unwrap();
        let mut decoder = Decoder::new().unwrap();
        let mut keys = Vec::new();
        for i in 0..12 {
            let frame = encoder.encode(&picture(320, 180, i * 3), i == 7).unwrap();
            keys.push(frame.key);
            let decoded = decoder
                .decode(&frame.bytes)
                .unwrap()
                .expect("a picture per frame");
            assert_eq!(
                openh264::formats::YUVSource::dimensions(&decoded),
                (320, 180)
            );
            // The decoded luma is the picture's (limited-range BT.601), within coding error.
            let mut rgb = vec![0u8; 320 * 180 * 3];
            decoded.write_rgb8(&mut rgb);
            let source = picture(320, 180, i * 3);
            let error: f64 = rgb
                .chunks(3)
                .zip(source.pixels())
                .map(|(d, s)| (d[0] as f64 - s[0] as f64).abs())
                .sum::<f64>()
                / (320.0 * 180.0);
            assert!(error < 12.0, "frame {i}: mean red error {error}");
            // And it is this frame, not the one before (no decoder delay).
            if i > 0 {
                let green = |img: &image::RgbaImage| -> f64 {
                    rgb.chunks(3)
                        .zip(img.pixels())
                        .map(|(d, s)| (d[1] as f64 - s[1] as f64).abs())
                        .sum::<f64>()
                        / (320.0 * 180.0)
                };
                let (now, before) = (green(&source), green(&picture(320, 180, (i - 1) * 3)));
                eprintln!(
                    "frame {i}: green error {now:.2} against it, {before:.2} against the one before"
                );
                assert!(now < before, "frame {i} decodes to the frame before it");
            }
        }
        assert!(keys[0], "the first frame is a keyframe");
        assert!(keys[7], "an asked-for keyframe");
        assert_eq!(
            keys.iter().filter(|k| **k).count(),
            2,
            "no other keyframes: {keys:?}"
        );
        // The codec string names Baseline (66 = 0x42).
        let first = VideoEncoder::new((320, 180), 10.0)
            .unwrap()
            .encode(&picture(320, 180, 0), true)
            .unwrap();
        let codec = codec_string(&first.bytes).expect("an SPS in a keyframe");
        assert!(codec.starts_with("avc1.42"), "{codec}");
        // A new size is a new sequence, starting with a keyframe.
        let resized = encoder.encode(&picture(160, 90, 0), false).unwrap();
        assert!(resized.key);
        assert!(check_size(321, 180).unwrap_err().contains("even"));
        assert!(check_size(4096, 2160).unwrap_err().contains("at most"));
        assert!(encoder.encode(&picture(161, 90, 0), false).is_err());
    }
}
