//! placeholder: filled by its owner
/// stub
pub fn quantize_q2_k(_src: &[f32], _dst: &mut [u8]) { todo!() }
/// stub
pub fn quantize_q3_k(_src: &[f32], _dst: &mut [u8]) { todo!() }
/// stub
pub fn quantize_q4_k(_src: &[f32], _dst: &mut [u8]) { todo!() }
/// stub
pub fn quantize_q5_k(_src: &[f32], _dst: &mut [u8]) { todo!() }
/// stub
pub fn quantize_q6_k(_src: &[f32], _dst: &mut [u8]) { todo!() }
/// stub
pub fn quantize_q8_k(_src: &[f32], _dst: &mut [u8]) { todo!() }
