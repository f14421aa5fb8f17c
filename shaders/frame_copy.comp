#version 430
// A shared frame (viewer/shared_frames.py) → its texture: one invocation per texel, row-major
// RGBA32F in, the texture's own layout out. GL's pixel-unpack copy of the same buffer ran at
// ~50 GB/s on an H200 (0.4 ms a 1024² frame); this runs on the shader cores.
layout(local_size_x = 16, local_size_y = 16) in;
layout(std430, binding = 0) readonly buffer Frame { vec4 texels[]; };
layout(rgba32f, binding = 0) writeonly uniform image2D target;

void main() {
    ivec2 p = ivec2(gl_GlobalInvocationID.xy);
    ivec2 size = imageSize(target);
    if (p.x < size.x && p.y < size.y) {
        imageStore(target, p, texels[p.y * size.x + p.x]);
    }
}
