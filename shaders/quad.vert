#version 330 core
// A full-screen quad drawn as a 4-vertex triangle strip, with no vertex buffer.
// Tensors are uploaded top row first, so texture row 0 is the image's top: v runs from 0 at the
// top of the quad to 1 at its bottom, and the picture is upright without flipping any data.
out vec2 uv;

void main() {
    vec2 corner = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1));  // (0,0) (1,0) (0,1) (1,1)
    uv = vec2(corner.x, 1.0 - corner.y);
    gl_Position = vec4(corner * 2.0 - 1.0, 0.0, 1.0);
}
